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

from app.errors import AppError, InvalidInputError, QueryTimeoutError, UnavailableError

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
    Migration(
        2,
        "events",
        """
        -- The event log (app.events.bus): ids commit in order under an advisory lock, so a
        -- consumer resumes with "id > last seen".
        CREATE TABLE events (
            id bigserial PRIMARY KEY,
            time timestamptz NOT NULL DEFAULT clock_timestamp(),
            type text NOT NULL,
            ok boolean NOT NULL DEFAULT true,
            twin text,
            graph text,
            site text,
            classes text[] NOT NULL DEFAULT '{}',
            author text,
            data jsonb NOT NULL DEFAULT '{}'
        );
        CREATE INDEX events_time ON events (time);
        CREATE INDEX events_twin ON events (twin, id) WHERE twin IS NOT NULL;
        """,
    ),
    Migration(
        3,
        "revisions",
        """
        -- Every model change (app.graph.revisions): the diff as zlib-compressed N-Triples.
        CREATE TABLE revisions (
            id bigserial PRIMARY KEY,
            time timestamptz NOT NULL DEFAULT clock_timestamp(),
            author text,
            graph text NOT NULL,
            operation text NOT NULL,
            added integer NOT NULL,
            removed integer NOT NULL,
            added_nt bytea NOT NULL,
            removed_nt bytea NOT NULL
        );
        CREATE INDEX revisions_time ON revisions (time);
        CREATE INDEX revisions_graph ON revisions (graph, id);
        """,
    ),
    Migration(
        4,
        "twins",
        """
        -- Live twins (app.twins): one row per twin of a graph entity, with its device
        -- status, desired-version counters and the SHA-256 digest of its device secret.
        CREATE TABLE twins (
            id text PRIMARY KEY,
            iri text NOT NULL UNIQUE,
            kind text NOT NULL,
            point uuid UNIQUE,
            graph text,
            site text,
            site_set boolean NOT NULL DEFAULT false,
            classes text[] NOT NULL DEFAULT '{}',
            labels jsonb NOT NULL DEFAULT '{}',
            schemas jsonb NOT NULL DEFAULT '{}',
            actions jsonb NOT NULL DEFAULT '{}',
            writable boolean NOT NULL DEFAULT false,
            secret_hash bytea UNIQUE,
            online boolean NOT NULL DEFAULT false,
            transport text,
            last_heartbeat timestamptz,
            desired_version bigint NOT NULL DEFAULT 0,
            delivered_version bigint NOT NULL DEFAULT 0,
            acked_version bigint NOT NULL DEFAULT 0,
            ack_error text,
            reported_version bigint NOT NULL DEFAULT 0,
            snapshot_at timestamptz,
            td jsonb,
            created timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE INDEX twins_labels ON twins USING gin (labels);
        CREATE INDEX twins_online ON twins (last_heartbeat) WHERE online;
        -- Desired and reported side of each property; desired NULL with a version is a
        -- removal still to be sent to the device.
        CREATE TABLE twin_properties (
            twin text NOT NULL REFERENCES twins (id) ON DELETE CASCADE,
            name text NOT NULL,
            desired jsonb,
            desired_version bigint NOT NULL DEFAULT 0,
            desired_time timestamptz,
            desired_by text,
            reported jsonb,
            reported_version bigint NOT NULL DEFAULT 0,
            reported_time timestamptz,
            synced_version bigint NOT NULL DEFAULT 0,
            PRIMARY KEY (twin, name)
        );
        """,
    ),
    Migration(
        5,
        "twin commands",
        """
        -- Commands to devices: ids give the delivery order; nothing lives only in memory.
        CREATE TABLE twin_commands (
            id bigserial PRIMARY KEY,
            twin text NOT NULL REFERENCES twins (id) ON DELETE CASCADE,
            name text NOT NULL,
            input jsonb,
            state text NOT NULL DEFAULT 'queued',
            idempotency_key text,
            request_hash text,
            author text,
            job bigint,
            created timestamptz NOT NULL DEFAULT clock_timestamp(),
            expires timestamptz NOT NULL,
            delivered timestamptz,
            acknowledged timestamptz,
            finished timestamptz,
            result jsonb,
            error text,
            UNIQUE (twin, idempotency_key)
        );
        CREATE INDEX twin_commands_open ON twin_commands (twin, id)
            WHERE state IN ('queued', 'delivered');
        CREATE INDEX twin_commands_expiry ON twin_commands (expires)
            WHERE state IN ('queued', 'delivered');
        """,
    ),
    Migration(
        6,
        "twin jobs",
        """
        -- Bulk operations over a selection of twins, with one result per selected target.
        CREATE TABLE twin_jobs (
            id bigserial PRIMARY KEY,
            created timestamptz NOT NULL DEFAULT clock_timestamp(),
            author text,
            operation text NOT NULL,
            selector jsonb NOT NULL,
            request jsonb NOT NULL,
            total integer NOT NULL DEFAULT 0,
            succeeded integer NOT NULL DEFAULT 0,
            failed integer NOT NULL DEFAULT 0
        );
        CREATE TABLE twin_job_results (
            job bigint NOT NULL REFERENCES twin_jobs (id) ON DELETE CASCADE,
            target text NOT NULL,
            twin text,
            ok boolean NOT NULL,
            code text NOT NULL,
            detail text,
            command bigint,
            PRIMARY KEY (job, target)
        );
        """,
    ),
    Migration(
        7,
        "twin snapshots",
        """
        -- Twin state history, delta-sampled; events after ``event_id`` refine a snapshot.
        CREATE TABLE twin_snapshots (
            twin text NOT NULL REFERENCES twins (id) ON DELETE CASCADE,
            time timestamptz NOT NULL,
            event_id bigint NOT NULL,
            state jsonb NOT NULL,
            PRIMARY KEY (twin, time)
        );
        """,
    ),
    Migration(
        8,
        "event filter indexes",
        """
        -- Event filters run in SQL (app.events.bus.select_events). Each index ends in id,
        -- so one graph's, site's or type's events (or the refused ones) read in log order
        -- and a page stops at its limit; twins use events_twin (migration 2). The classes
        -- index serves ``classes && ...``; without fastupdate an insert pays its share at
        -- once instead of an occasional pending-list merge under the publish lock.
        CREATE INDEX events_graph ON events (graph, id) WHERE graph IS NOT NULL;
        CREATE INDEX events_site ON events (site, id) WHERE site IS NOT NULL;
        CREATE INDEX events_type ON events (type text_pattern_ops, id);
        CREATE INDEX events_refused ON events (id) WHERE NOT ok;
        CREATE INDEX events_classes ON events USING gin (classes) WITH (fastupdate = off);
        """,
    ),
    Migration(
        9,
        "broker users",
        """
        -- MQTT broker logins (app.twins.broker_auth). A device's is its twin id and device
        -- secret: the Mosquitto hash is computed when the secret is issued, since only its
        -- SHA-256 is kept. Gateways publish readings under a name and password of their own.
        CREATE TABLE twin_broker_users (
            twin text PRIMARY KEY REFERENCES twins (id) ON DELETE CASCADE,
            hash text NOT NULL,
            updated timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        CREATE TABLE broker_users (
            name text PRIMARY KEY,
            role text NOT NULL CHECK (role IN ('gateway')),
            hash text NOT NULL,
            created timestamptz NOT NULL DEFAULT clock_timestamp()
        );
        """,
    ),
    Migration(
        10,
        "reading rollups",
        """
        -- Rollups kept by the platform on plain PostgreSQL (app.telemetry.rollups): what
        -- re-aggregation needs per point and bucket, hourly from readings, daily from hours.
        CREATE TABLE readings_rollup_1h (
            point uuid NOT NULL,
            bucket timestamptz NOT NULL,
            n bigint NOT NULL,
            n_num bigint NOT NULL,
            sum_num double precision,
            min_num double precision,
            max_num double precision,
            first_time timestamptz NOT NULL,
            first_num double precision,
            first_txt text,
            first_kind smallint NOT NULL,
            last_time timestamptz NOT NULL,
            last_num double precision,
            last_txt text,
            last_kind smallint NOT NULL,
            PRIMARY KEY (point, bucket)
        );
        CREATE INDEX readings_rollup_1h_bucket ON readings_rollup_1h (bucket);
        CREATE TABLE readings_rollup_1d (LIKE readings_rollup_1h INCLUDING ALL);
        -- Per level: writers record late ranges below ``threshold``; buckets before
        -- ``materialized`` are in the table (0001-01-01: never).
        CREATE TABLE readings_rollups (
            name text PRIMARY KEY,
            width interval NOT NULL,
            threshold timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
            materialized timestamptz NOT NULL DEFAULT '0001-01-01 00:00:00+00',
            refreshed timestamptz
        );
        INSERT INTO readings_rollups (name, width) VALUES ('1h', '1 hour'), ('1d', '1 day');
        -- Time ranges [lo, hi] of readings written below the threshold, not yet re-computed.
        CREATE TABLE readings_rollup_invalid (
            id bigserial PRIMARY KEY,
            lo timestamptz NOT NULL,
            hi timestamptz NOT NULL
        );
        -- Statement-level only (writes through the store record their ranges themselves):
        -- TRUNCATE empties the rollups, DELETE and UPDATE invalidate what they touched.
        CREATE FUNCTION readings_rollups_reset() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            TRUNCATE readings_rollup_1h, readings_rollup_1d, readings_rollup_invalid;
            UPDATE readings_rollups
                SET threshold = '0001-01-01 00:00:00+00', materialized = '0001-01-01 00:00:00+00';
            RETURN NULL;
        END $$;
        CREATE FUNCTION readings_rollups_invalidate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO readings_rollup_invalid (lo, hi)
                SELECT min(time), max(time) FROM changed HAVING count(*) > 0;
            RETURN NULL;
        END $$;
        CREATE TRIGGER readings_rollups_truncate AFTER TRUNCATE ON readings
            FOR EACH STATEMENT EXECUTE FUNCTION readings_rollups_reset();
        CREATE TRIGGER readings_rollups_delete AFTER DELETE ON readings
            REFERENCING OLD TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION readings_rollups_invalidate();
        CREATE TRIGGER readings_rollups_update_old AFTER UPDATE ON readings
            REFERENCING OLD TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION readings_rollups_invalidate();
        CREATE TRIGGER readings_rollups_update_new AFTER UPDATE ON readings
            REFERENCING NEW TABLE AS changed
            FOR EACH STATEMENT EXECUTE FUNCTION readings_rollups_invalidate();
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
    except pg_errors.DataError as exc:
        # A value the database cannot store (out of range, bad encoding): the caller's input.
        detail = str(exc).splitlines()[0][:300]
        raise InvalidInputError(f"{what}: the database refused a value: {detail}") from exc
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
