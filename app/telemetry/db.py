"""The PostgreSQL connection pool, versioned schema migrations and feature detection.

Migrations are an ordered list of ``Migration(version, name, sql)``; ``schema_migrations``
records what ran. ``migrate`` takes a transaction-scoped advisory lock so two processes
starting at once do not race, and each migration commits with its bookkeeping row.
TimescaleDB set-up is not a migration (it depends on what the server offers, which can
change after the fact); ``app.telemetry.timescale.apply`` runs after ``migrate`` when
``Features`` say it can.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from app.errors import AppError, QueryTimeoutError, UnavailableError

#: Arbitrary constant for pg_advisory_xact_lock: "TwinGraph migrations".
MIGRATION_LOCK_KEY = 0x7467_6D69

#: Value kinds stored in ``readings.kind`` (see ``app.telemetry.readings``).
KIND_NONE, KIND_FLOAT, KIND_INT, KIND_BOOL, KIND_TEXT = 0, 1, 2, 3, 4


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "readings and latest",
        f"""
        -- One row per (point, time). Numbers, booleans (0/1) and integers live in ``num``
        -- (double precision: integers are exact up to 2^53), strings in ``txt``; ``kind``
        -- says which Python type the value had so reads give back what was written.
        CREATE TABLE readings (
            point uuid NOT NULL,
            time timestamptz NOT NULL,
            num double precision,
            txt text,
            kind smallint NOT NULL CHECK (kind BETWEEN {KIND_NONE} AND {KIND_TEXT}),
            PRIMARY KEY (point, time)
        );
        -- The newest reading per point, maintained by every write: latest() is a key lookup.
        CREATE TABLE latest (
            point uuid PRIMARY KEY,
            time timestamptz NOT NULL,
            num double precision,
            txt text,
            kind smallint NOT NULL
        );
        """,
    ),
)


@dataclass(frozen=True, slots=True)
class Features:
    """What the server offers, detected at start-up and reported by /health."""

    server_version: str
    server_version_num: int
    timescaledb_available: bool
    timescaledb_installed: bool
    timescaledb_version: str | None
    #: 'timescale' (community: caggs, compression, policies) or 'apache' (hypertables only).
    timescaledb_license: str | None

    @property
    def timescaledb_version_tuple(self) -> tuple[int, int]:
        if not self.timescaledb_version:
            return (0, 0)
        m = re.match(r"(\d+)\.(\d+)", self.timescaledb_version)
        return (int(m.group(1)), int(m.group(2))) if m else (0, 0)

    @property
    def hypertables(self) -> bool:
        """Installed and new enough for ``by_range`` (2.13+), the API our DDL uses."""
        return self.timescaledb_installed and self.timescaledb_version_tuple >= (2, 13)

    @property
    def compression(self) -> bool:
        return self.hypertables and self.timescaledb_license != "apache"

    @property
    def continuous_aggregates(self) -> bool:
        return self.hypertables and self.timescaledb_license != "apache"

    def as_dict(self) -> dict[str, object]:
        return {
            "server_version": self.server_version,
            "timescaledb_available": self.timescaledb_available,
            "timescaledb_installed": self.timescaledb_installed,
            "timescaledb_version": self.timescaledb_version,
            "hypertables": self.hypertables,
            "compression": self.compression,
            "continuous_aggregates": self.continuous_aggregates,
        }


PLAIN_POSTGRES = Features("", 0, False, False, None, None)


def redact(dsn: str) -> str:
    """host:port/dbname of a DSN, for messages (never the password)."""
    try:
        parts = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<invalid DSN>"
    return f"{parts.get('host', 'localhost')}:{parts.get('port', 5432)}/{parts.get('dbname', '')}"


@contextmanager
def translate_errors(what: str) -> Iterator[None]:
    """Turn psycopg and pool errors into the app's error family at the telemetry boundary."""
    try:
        yield
    except AppError:
        raise
    except pg_errors.QueryCanceled as exc:
        raise QueryTimeoutError(f"{what}: the database cancelled the query ({exc})") from exc
    except (psycopg.OperationalError, PoolTimeout) as exc:
        raise UnavailableError(f"{what}: database unavailable ({exc})") from exc


def _configure(conn: psycopg.Connection[Any]) -> None:
    # Durability is a contract of write(): never inherit a relaxed server default.
    conn.execute("SET synchronous_commit = on")
    conn.commit()


def connect_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 8,
    timeout_s: float = 10.0,
    name: str = "twingraph-telemetry",
) -> ConnectionPool:
    """Open a pool and prove the server answers; a refused connection is UnavailableError.

    A direct connection first gives the real libpq message ("connection refused",
    "password authentication failed") instead of the pool's generic timeout.
    """
    try:
        psycopg.connect(dsn, connect_timeout=max(1, int(timeout_s))).close()
    except psycopg.Error as exc:
        raise UnavailableError(f"PostgreSQL at {redact(dsn)} is unavailable: {exc}") from exc
    pool: ConnectionPool = ConnectionPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout_s,
        configure=_configure,
        # One round trip per checkout buys transparent recovery after a server restart.
        check=ConnectionPool.check_connection,
        name=name,
        open=False,
    )
    try:
        pool.open(wait=True, timeout=timeout_s)
    except PoolTimeout as exc:
        pool.close()
        raise UnavailableError(f"PostgreSQL at {redact(dsn)} is unavailable: {exc}") from exc
    return pool


def detect_features(pool: ConnectionPool) -> Features:
    with translate_errors("feature detection"), pool.connection() as conn:
        row = conn.execute(
            """
            SELECT current_setting('server_version'),
                   current_setting('server_version_num')::int,
                   (SELECT default_version FROM pg_available_extensions
                     WHERE name = 'timescaledb'),
                   (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
                   current_setting('timescaledb.license', true)
            """
        ).fetchone()
    assert row is not None
    version, version_num, available, installed, license_ = row
    return Features(
        server_version=version,
        server_version_num=version_num,
        timescaledb_available=available is not None,
        timescaledb_installed=installed is not None,
        timescaledb_version=installed or available,
        timescaledb_license=license_ or None,
    )


def applied_versions(conn: psycopg.Connection[Any]) -> set[int]:
    exists = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return set()
    return {v for (v,) in conn.execute("SELECT version FROM schema_migrations").fetchall()}


def migrate(pool: ConnectionPool, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
    """Apply the migrations not yet recorded, in version order; return the versions applied."""
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise ValueError("migration versions must be unique and ascending")
    applied: list[int] = []
    with translate_errors("schema migration"), pool.connection() as conn, conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK_KEY,))
        conn.execute(
            """
            CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                name text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now()
            )
            """
        )
        done = applied_versions(conn)
        for migration in migrations:
            if migration.version in done:
                continue
            with conn.transaction():  # a savepoint per migration: clear error, nothing half-done
                conn.execute(migration.sql.encode())
                conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES (%s, %s)",
                    (migration.version, migration.name),
                )
            applied.append(migration.version)
    return applied
