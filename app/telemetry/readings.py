"""Reading storage: batched durable writes, O(1) latest values, raw and bucketed ranges.

Value representation (one row per point and time, see migration 1 in ``db``):

=========  ==========================  ==================================
Python     stored                      aggregates
=========  ==========================  ==================================
float      num, kind=1                 all
int        num, kind=2 (exact < 2^53)  all (results are floats)
bool       num 0/1, kind=3             all: avg of a binary point is its
                                       duty cycle, sum counts the trues
str        txt, kind=4                 count, first, last
None       kind=0 (explicit no value)  count, first, last
=========  ==========================  ==================================

So ``count``/``first``/``last`` see every reading (a ``None`` reading is a real state, e.g.
offline); ``avg``/``min``/``max``/``sum`` see numbers and booleans, and a bucket without any
is left out. No gap filling: buckets without readings are not returned.

Writes: re-sending a reading is a no-op (the first value for a (point, time) wins), late
and out-of-order readings are stored, and ``latest`` only moves forward in time. A write
returns after its transaction committed with ``synchronous_commit = on``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, Literal, LiteralString, Protocol, overload
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool

from app.domain.telemetry import Reading, Value
from app.errors import InvalidInputError, UnavailableError
from app.telemetry import notify, timescale
from app.telemetry.db import (
    KIND_BOOL,
    KIND_FLOAT,
    KIND_INT,
    KIND_NONE,
    KIND_TEXT,
    Features,
    detect_features,
    migrate,
    translate_errors,
)
from app.telemetry.gc_pause import gc_paused
from app.telemetry.rollups import Level, Rollups

log = logging.getLogger("twingraph.telemetry")

Agg = Literal["avg", "min", "max", "sum", "count", "first", "last"]
AGGS: tuple[str, ...] = ("avg", "min", "max", "sum", "count", "first", "last")
#: Buckets align to this origin on every path; it is TimescaleDB's default origin (a
#: Monday), so plain date_bin, time_bucket and the continuous aggregates agree.
ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)
MAX_EXACT_INT = 2**53

LATEST_AT_SQL = """
SELECT p.point, r.time, r.num, r.txt, r.kind
FROM unnest(%(points)s::uuid[]) AS p(point)
CROSS JOIN LATERAL (
    SELECT time, num, txt, kind FROM readings
    WHERE point = p.point AND time <= %(at)s
    ORDER BY time DESC LIMIT 1
) r"""
COPY_TYPES = ["uuid", "timestamptz", "float8", "text", "int2"]
STAGING_SQL = """
CREATE TEMP TABLE IF NOT EXISTS readings_staging (
    point uuid, time timestamptz, num float8, txt text, kind int2
) ON COMMIT DELETE ROWS
"""
# Sorted inserts lock keys in one global order: concurrent writers cannot deadlock, and
# the index is filled in order. ``latest`` is fed only by the rows actually inserted, so
# it always shows a stored reading.
MERGE_SQL = """
WITH ins AS (
    INSERT INTO readings (point, time, num, txt, kind)
    SELECT point, time, num, txt, kind FROM pg_temp.readings_staging ORDER BY point, time
    ON CONFLICT DO NOTHING
    RETURNING point, time, num, txt, kind
), newest AS (
    SELECT DISTINCT ON (point) point, time, num, txt, kind FROM ins ORDER BY point, time DESC
), up AS (
    INSERT INTO latest AS l (point, time, num, txt, kind)
    SELECT point, time, num, txt, kind FROM newest
    ON CONFLICT (point) DO UPDATE
        SET time = EXCLUDED.time, num = EXCLUDED.num, txt = EXCLUDED.txt, kind = EXCLUDED.kind
        WHERE l.time < EXCLUDED.time
    RETURNING 1
)
SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM up),
       (SELECT min(time) FROM ins), (SELECT max(time) FROM ins)
"""

# Sorted by point: concurrent writers lock ``latest`` rows in the same order.
LATEST_SQL = """
INSERT INTO latest AS l (point, time, num, txt, kind)
SELECT * FROM unnest(%s::uuid[], %s::timestamptz[], %s::float8[], %s::text[], %s::int2[])
ORDER BY 1
ON CONFLICT (point) DO UPDATE
    SET time = EXCLUDED.time, num = EXCLUDED.num, txt = EXCLUDED.txt, kind = EXCLUDED.kind
    WHERE l.time < EXCLUDED.time
"""

#: Raw-table aggregates: (select expressions giving num, txt, kind; HAVING).
RAW_AGG: dict[str, tuple[LiteralString, LiteralString]] = {
    "avg": ("avg(num), NULL::text, 1::smallint", "count(num) > 0"),
    "min": ("min(num), NULL::text, 1::smallint", "count(num) > 0"),
    "max": ("max(num), NULL::text, 1::smallint", "count(num) > 0"),
    "sum": ("sum(num), NULL::text, 1::smallint", "count(num) > 0"),
    "count": ("count(*)::double precision, NULL::text, 2::smallint", "true"),
}


@dataclass(frozen=True, slots=True)
class BucketRow:
    """One bucket of an aggregated range: ``start`` is the bucket's start time."""

    start: datetime
    value: Value


@dataclass(frozen=True, slots=True)
class WriteResult:
    inserted: int
    duplicates: int
    #: Points whose latest value moved forward.
    latest_updated: int


Row = tuple[UUID, datetime, float | None, str | None, int]


class ReadingLike(Protocol):
    """A Reading, or anything holding the same three attributes (a decoded request)."""

    @property
    def point(self) -> UUID: ...
    @property
    def time(self) -> datetime: ...
    @property
    def value(self) -> Value: ...


#: COPY rows and each point's newest row, as ``encode_rows`` makes them.
EncodedBatch = tuple[list[Row], dict[UUID, Row]]


def encode_rows(readings: Sequence[ReadingLike]) -> EncodedBatch:
    """COPY rows, and each point's newest row; one pass, floats (the bulk) inlined.

    Points are told apart by their UUIDs' integers while scanning: ``uuid.UUID`` hashes
    and compares in Python code, which made this loop 2.5x slower with UUID keys."""
    rows: list[Row] = []
    newest: dict[int, Row] = {}
    append = rows.append
    get = newest.get
    for r in readings:
        v = r.value
        p = r.point
        t = r.time
        row: Row = (p, t, v, None, KIND_FLOAT) if type(v) is float else (p, t, *encode(v))
        append(row)
        key = p.int
        seen = get(key)
        if seen is None or t > seen[1]:
            newest[key] = row
    return rows, {row[0]: row for row in newest.values()}


def array_literals(rows: Iterable[Row]) -> list[str]:
    """The five columns of ``rows`` as PostgreSQL array literals, for ``LATEST_SQL``.

    psycopg adapts a list element by element in Python; for a batch's thousand newest
    readings that took three times as long as the upsert itself. UUIDs (bare hex), RFC 3339 times,
    floats and small ints need no quoting; texts are always double-quoted with ``\\`` and
    ``"`` escaped, so a text such as ``NULL`` or ``{a,b}`` stays a text.
    """
    points: list[str] = []
    times: list[str] = []
    nums: list[str] = []
    texts: list[str] = []
    kinds: list[str] = []
    for point, when, num, txt, kind in rows:
        points.append(point.hex)  # uuid_in reads 32 bare hex digits too
        times.append(when.isoformat())
        nums.append("NULL" if num is None else repr(num))
        texts.append("NULL" if txt is None else _quoted(txt))
        kinds.append(str(kind))
    return ["{" + ",".join(column) + "}" for column in (points, times, nums, texts, kinds)]


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _announce(conn: psycopg.Connection[Any], rows: list[Row], newest: dict[UUID, Row]) -> None:
    """NOTIFY a committed batch (listeners hear only what is stored)."""
    latest = [Reading(p, row[1], decode(row[2], row[3], row[4])) for p, row in newest.items()]
    readings = (
        [Reading(r[0], r[1], decode(r[2], r[3], r[4])) for r in rows]
        if len(rows) <= notify.FULL_BATCH_MAX
        else latest
    )
    # One statement per payload, pipelined: pg_notify over unnest() of the same payloads
    # measured 20x slower (server side) for 40 kB of JSON.
    with conn.cursor() as cur:
        cur.executemany(
            "SELECT pg_notify(%s, %s)",
            [(notify.CHANNEL, p) for p in notify.payloads(readings, latest)],
        )


def _copy(conn: psycopg.Connection[Any], table: LiteralString, rows: list[Row]) -> None:
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {table} (point, time, num, txt, kind) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.set_types(COPY_TYPES)
        for row in rows:
            copy.write_row(row)


def encode(value: Value) -> tuple[float | None, str | None, int]:
    if value is None:
        return None, None, KIND_NONE
    if value is True or value is False:
        return float(value), None, KIND_BOOL
    if isinstance(value, float):
        return value, None, KIND_FLOAT
    if isinstance(value, int):
        if -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
            return float(value), None, KIND_INT
        raise InvalidInputError(f"integer {value} is beyond the exactly storable ±2^53")
    if isinstance(value, str):
        return None, value, KIND_TEXT
    raise InvalidInputError(f"unsupported reading value type {type(value).__name__}")


def decode(num: float | None, txt: str | None, kind: int) -> Value:
    if kind == KIND_FLOAT:
        return num
    if kind == KIND_INT:
        return None if num is None else int(num)
    if kind == KIND_BOOL:
        return None if num is None else num != 0
    if kind == KIND_TEXT:
        return txt
    return None


class TelemetryStore:
    """Readings in PostgreSQL; uses TimescaleDB's aggregates when ``features`` say so."""

    def __init__(
        self,
        pool: ConnectionPool,
        features: Features,
        *,
        caggs: Sequence[timescale.Cagg] | None = None,
        refresh_window: timedelta = timescale.DEFAULT_REFRESH_WINDOW,
        rollups: Rollups | None = None,
    ) -> None:
        if features.server_version_num and features.server_version_num < 140000:
            raise UnavailableError(
                f"PostgreSQL {features.server_version} is too old: telemetry needs 14 or newer "
                "(date_bin)",
                code="postgres_too_old",
            )
        self._pool = pool
        self._features = features
        self._timescale = features.hypertables
        if caggs is None:
            caggs = ()
            if features.continuous_aggregates:
                with translate_errors("telemetry"), pool.connection() as conn:
                    caggs = timescale.installed_caggs(conn)
        # Widest first: the coarsest usable aggregate reads the fewest rows.
        self._caggs = sorted(caggs, key=lambda c: c.width, reverse=True)
        self._refresh_window = refresh_window
        #: Platform-kept rollups (plain PostgreSQL only; TimescaleDB keeps its own).
        self.rollups = None if self._caggs else rollups
        #: Announce committed readings on ``notify.CHANNEL`` (live views, subscriptions).
        self.announce = True

    @property
    def features(self) -> Features:
        return self._features

    # -- writes ----------------------------------------------------------------------------

    def write(self, *, readings: Sequence[Reading]) -> WriteResult:
        """Store a batch in one transaction; returns once it is durably committed.

        Fast path: binary COPY straight into ``readings`` inside a savepoint, then one
        upsert of each point's newest reading (found while encoding) into ``latest``. If
        the batch holds a reading already stored (a re-send) or a concurrent writer
        collides with it, the savepoint is rolled back and the batch goes through a staging
        table and ``INSERT .. ON CONFLICT DO NOTHING`` instead.
        """
        if not readings:
            return WriteResult(0, 0, 0)
        with gc_paused():
            encoded = encode_rows(readings)
        return self.write_encoded(encoded)

    def write_encoded(self, encoded: EncodedBatch) -> WriteResult:
        """``write`` for a batch already made into rows (``encode_rows``)."""
        rows, newest = encoded
        if not rows:
            return WriteResult(0, 0, 0)
        with translate_errors("telemetry write"), gc_paused():
            try:
                with self._pool.connection() as conn:
                    with conn.transaction():
                        try:
                            with conn.transaction():
                                _copy(conn, "readings", rows)
                        except (pg_errors.UniqueViolation, pg_errors.DeadlockDetected):
                            inserted, moved, oldest, latest_time = self._merge(conn, rows)
                        else:
                            inserted, moved = len(rows), self._upsert_latest(conn, newest)
                            oldest = latest_time = None
                            if self._caggs or self.rollups is not None:
                                oldest = min(map(_TIME, rows))
                                latest_time = max(r[1] for r in newest.values())
                        if self.rollups is not None and oldest is not None and latest_time:
                            self.rollups.note_write(conn, oldest, latest_time)
                    if self.announce and inserted:
                        # After the commit, in a transaction of its own: NOTIFY takes a
                        # cluster-wide lock until commit, which must not span the
                        # readings' WAL flush (concurrent writers would queue behind it).
                        # The readings are stored whatever happens to the announcement.
                        try:
                            with conn.transaction():
                                _announce(conn, rows, newest)
                        except psycopg.Error:
                            log.warning("could not announce %d stored readings", inserted)
            except (pg_errors.DataError, pg_errors.UntranslatableCharacter) as exc:
                detail = str(exc).splitlines()[0][:300]
                raise InvalidInputError(f"readings rejected by the database: {detail}") from exc
            if self._caggs and oldest is not None and latest_time is not None:
                self._refresh_late(oldest, latest_time)
        return WriteResult(inserted, len(rows) - inserted, moved)

    @staticmethod
    def _merge(
        conn: psycopg.Connection[Any], rows: list[Row]
    ) -> tuple[int, int, datetime | None, datetime | None]:
        conn.execute(STAGING_SQL)
        _copy(conn, "pg_temp.readings_staging", rows)
        result = conn.execute(MERGE_SQL).fetchone()
        assert result is not None
        inserted, moved, oldest, newest = result
        return int(inserted), int(moved), oldest, newest

    @staticmethod
    def _upsert_latest(conn: psycopg.Connection[Any], newest: dict[UUID, Row]) -> int:
        cur = conn.execute(LATEST_SQL, array_literals(newest.values()))
        return cur.rowcount

    def _refresh_late(self, oldest: datetime, newest: datetime) -> None:
        """Late data older than the refresh policies' window: refresh the aggregates now."""
        if oldest >= datetime.now(UTC) - self._refresh_window:
            return
        with self._pool.connection() as conn:
            conn.autocommit = True
            try:
                for cagg in self._caggs:
                    start = _floor(oldest, cagg.width)
                    end = _floor(newest, cagg.width) + cagg.width
                    conn.execute(timescale.refresh_sql(cagg).encode(), (start, end))
            finally:
                conn.autocommit = False

    # -- reads -----------------------------------------------------------------------------

    def latest(self, *, points: Sequence[UUID], at: datetime | None = None) -> dict[UUID, Reading]:
        """The newest reading of each point that has one (a primary-key lookup per point);
        with ``at``, the newest at or before that moment (time travel: the ``latest`` table
        may hold later ones), a backward index probe per point however long the history."""
        if not points:
            return {}
        if at is not None and at.tzinfo is None:
            raise InvalidInputError("The moment needs a time zone offset", code="bad_time")
        with translate_errors("telemetry latest"), self._pool.connection() as conn:
            if at is None:
                rows = conn.execute(
                    "SELECT point, time, num, txt, kind FROM latest WHERE point = ANY(%s)",
                    (list(points),),
                ).fetchall()
            else:
                rows = conn.execute(LATEST_AT_SQL, {"points": list(points), "at": at}).fetchall()
        return {p: Reading(p, t, decode(n, s, k)) for p, t, n, s, k in rows}

    def count(self) -> int:
        """Exact number of stored readings (a full count: for tests and admin, not hot paths)."""
        with translate_errors("telemetry count"), self._pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM readings").fetchone()
        return int(row[0]) if row else 0

    @overload
    def range(
        self,
        *,
        point: UUID,
        start: datetime,
        end: datetime,
        bucket: None = None,
        agg: Agg = "avg",
        limit: int | None = None,
    ) -> list[Reading]: ...

    @overload
    def range(
        self,
        *,
        point: UUID,
        start: datetime,
        end: datetime,
        bucket: timedelta,
        agg: Agg = "avg",
        limit: int | None = None,
    ) -> list[BucketRow]: ...

    def range(
        self,
        *,
        point: UUID,
        start: datetime,
        end: datetime,
        bucket: timedelta | None = None,
        agg: Agg = "avg",
        limit: int | None = None,
    ) -> list[Reading] | list[BucketRow]:
        """Readings in [start, end) oldest first, or ``agg`` per ``bucket`` when given."""
        result = self._query([point], start, end, bucket, agg, limit)
        return result.get(point, [])

    def range_many(
        self,
        *,
        points: Sequence[UUID],
        start: datetime,
        end: datetime,
        bucket: timedelta | None = None,
        agg: Agg = "avg",
        limit: int | None = None,
    ) -> dict[UUID, list[Reading]] | dict[UUID, list[BucketRow]]:
        """``range`` for many points in one SQL round trip; ``limit`` is per point (raw only).

        Every requested point is a key, with an empty list when it has no data.
        """
        if bucket is not None and limit is not None:
            raise InvalidInputError("range_many takes a limit for raw readings only")
        result = self._query(list(points), start, end, bucket, agg, limit)
        for p in points:
            result.setdefault(p, [])
        return result

    def _query(
        self,
        points: list[UUID],
        start: datetime,
        end: datetime,
        bucket: timedelta | None,
        agg: str,
        limit: int | None,
    ) -> dict[UUID, list[Any]]:
        _check_range(start, end, bucket, agg, limit)
        if not points:
            return {}
        params: dict[str, Any] = {
            "points": points,
            "start": start,
            "end": end,
            "bucket": bucket,
            "origin": ORIGIN,
            "limit": limit,
        }
        level = None
        if bucket is not None and self.rollups is not None:
            level = self.rollups.level_for(bucket, start, end)
        query = self._sql(bucket, agg, limit, start, end, level=level)
        out: dict[UUID, list[Any]] = {}
        with translate_errors("telemetry range"), self._pool.connection() as conn:
            if level is not None:
                # The planner cannot tell how little the raw spans hold; its estimate
                # crossed jit_above_cost and compiling took ~1 s for ~0.1 s of work.
                conn.execute("SET LOCAL jit = off")
            cur = conn.execute(query, params)
            if bucket is None:
                for p, t, n, s, k in cur:
                    out.setdefault(p, []).append(Reading(p, t, decode(n, s, k)))
            else:
                for p, b, n, s, k in cur:
                    out.setdefault(p, []).append(BucketRow(b, decode(n, s, k)))
        return out

    def _sql(
        self,
        bucket: timedelta | None,
        agg: str,
        limit: int | None,
        start: datetime,
        end: datetime,
        *,
        level: Level | None = None,
    ) -> LiteralString | bytes:
        """The query for a range; ``level``: through that rollup level (``Rollups``)."""
        if bucket is None:
            # LATERAL per point: each point reads its own index range, limit per point.
            return """
            SELECT p.point, r.time, r.num, r.txt, r.kind
            FROM unnest(%(points)s::uuid[]) WITH ORDINALITY AS p(point, ord)
            CROSS JOIN LATERAL (
                SELECT time, num, txt, kind FROM readings
                WHERE point = p.point AND time >= %(start)s AND time < %(end)s
                ORDER BY time LIMIT %(limit)s
            ) r
            ORDER BY p.ord, r.time"""
        cagg = self._cagg_for(bucket, start, end)
        if cagg is not None:
            return timescale.cagg_query(cagg, agg).encode()
        if self.rollups is not None and level is not None:
            return self.rollups.query_sql(level, agg)

        def bucket_of(t: LiteralString) -> LiteralString:
            if self._timescale:
                return f"time_bucket(%(bucket)s, {t}, origin => %(origin)s)"
            return f"date_bin(%(bucket)s, {t}, %(origin)s)"

        bucket_expr = bucket_of("time")
        # LATERAL per point again: each point aggregates its own index range, so the plan
        # does not hang on table statistics (a bulk load leaves them stale, and a
        # table-wide scan then sorts every row of the window, spilling to disk).
        where: LiteralString = "point = p.point AND time >= %(start)s AND time < %(end)s"
        # A window inside one bucket (a dashboard's "last hour, hourly") needs no grouping:
        # its bucket's start is a constant.
        if _floor(start, bucket) == _floor(end - timedelta(microseconds=1), bucket):
            const = bucket_of("%(start)s::timestamptz")
            if agg in ("first", "last"):
                desc: LiteralString = "" if agg == "first" else " DESC"
                inner: LiteralString = (
                    f"SELECT {const} AS b, num, txt, kind FROM readings WHERE {where} "
                    f"ORDER BY time{desc} LIMIT 1"
                )
            else:
                select, having = RAW_AGG[agg]
                inner = f"SELECT {const} AS b, {select} FROM readings WHERE {where} HAVING {having}"
        elif agg in ("first", "last"):
            order: LiteralString = "time" if agg == "first" else "time DESC"
            inner = (
                f"SELECT DISTINCT ON (b) {bucket_expr} AS b, num, txt, kind "
                f"FROM readings WHERE {where} ORDER BY b, {order}"
            )
        else:
            select, having = RAW_AGG[agg]
            inner = (
                f"SELECT {bucket_expr} AS b, {select} FROM readings WHERE {where} "
                f"GROUP BY b HAVING {having}"
            )
        return (
            "SELECT p.point, r.* FROM unnest(%(points)s::uuid[]) AS p(point) "
            f"CROSS JOIN LATERAL ({inner}) r ORDER BY p.point, r.b LIMIT %(limit)s"
        )

    def _cagg_for(self, bucket: timedelta, start: datetime, end: datetime) -> timescale.Cagg | None:
        """The widest aggregate that gives exactly the raw answer, if any."""
        for cagg in self._caggs:
            if (
                bucket % cagg.width == timedelta(0)
                and (start - ORIGIN) % cagg.width == timedelta(0)
                and (end - ORIGIN) % cagg.width == timedelta(0)
            ):
                return cagg
        return None


_TIME = itemgetter(1)


def _floor(t: datetime, width: timedelta) -> datetime:
    return t - (t - ORIGIN) % width


def _check_range(
    start: datetime, end: datetime, bucket: timedelta | None, agg: str, limit: int | None
) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInputError("start and end must carry a time zone")
    if end <= start:
        raise InvalidInputError("end must be after start")
    if bucket is not None and bucket <= timedelta(0):
        raise InvalidInputError("bucket must be positive")
    if agg not in AGGS:
        raise InvalidInputError(f"unknown aggregate {agg!r}; one of {', '.join(AGGS)}")
    if limit is not None and limit < 0:
        raise InvalidInputError("limit must not be negative")


def open_store(
    pool: ConnectionPool, *, timescale_settings: timescale.TimescaleSettings | None = None
) -> TelemetryStore:
    """Start-up sequence: migrate, detect, set up TimescaleDB if offered, detect again."""
    settings = timescale_settings or timescale.TimescaleSettings()
    migrate(pool)
    features = detect_features(pool)
    if settings.enabled and features.timescaledb_available:
        with translate_errors("TimescaleDB set-up"), pool.connection() as conn:
            timescale.apply(conn, features, settings)
        features = detect_features(pool)
    rollups = None if features.continuous_aggregates else Rollups(pool, origin=ORIGIN)
    return TelemetryStore(pool, features, refresh_window=settings.refresh_window, rollups=rollups)
