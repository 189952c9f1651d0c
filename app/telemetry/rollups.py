"""Platform-maintained rollups of readings on plain PostgreSQL (1 h and 1 d buckets).

TimescaleDB keeps continuous aggregates itself (``app.telemetry.timescale``); without it the
platform keeps ``readings_rollup_1h`` (from raw readings) and ``readings_rollup_1d`` (from
the hourly rows), created by migration 10. A row holds what re-aggregation needs, as the
caggs do: counts, sum, min, max, and the first and last reading (time, num, txt, kind).

Reading a bucketed range (``query_sql``) combines, per point and result bucket, rollup rows
for level buckets that are materialized and valid with raw aggregation of everything else:
the unaligned edges of the range, the time above the ``materialized`` watermark (fresh
data shows at once, as TimescaleDB's real-time aggregation), and buckets a late write has
invalidated but the refresher has not re-computed yet. So an answer equals the raw one at
every moment: count, min, max, first and last exactly; sum and avg of fractional floats up
to float rounding (partial sums are added in another order), exactly for ints and booleans.

Concurrency, the contract between writers and the refresher:

* A writer whose batch holds a reading older than ``threshold`` records the batch's time
  range in ``readings_rollup_invalid`` in the batch's own transaction (``note_write``),
  deciding *after* its rows are inserted. A batch no older than ``now - settle`` plus a
  clock margin skips even that one statement: the refresher never sets a threshold later
  than the database's ``now - settle`` (clocks of app and database may differ by at most
  ``clock_margin``).
* ``refresh`` first moves the threshold and commits, then waits until every transaction
  that held a write lock on ``readings`` at that moment has ended, and only then takes
  the snapshot it materializes from (one REPEATABLE READ transaction). A writer that read
  the old threshold had its rows inserted before the threshold moved, so it was waited for
  and its rows are in that snapshot; a writer that reads the new one records its range.
* The refresher deletes exactly the invalidation records its snapshot sees (a DELETE in
  the same REPEATABLE READ transaction) and re-computes their buckets from that snapshot,
  where their readings are visible (a record commits with its readings). Records committed
  later stay for the next round; until then queries read those buckets raw.
* One refresher at a time (a session advisory lock); a second one skips its round.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import IsolationLevel
from psycopg_pool import ConnectionPool

from app.telemetry.db import translate_errors
from app.telemetry.timescale import interval

log = logging.getLogger("twingraph.telemetry.rollups")

#: Session advisory lock of the refresher ("tgru").
REFRESH_LOCK_KEY = 0x7467_7275
#: A bucket is materialized this long after it ended (late readings settle meanwhile).
DEFAULT_SETTLE = timedelta(minutes=5)
#: How far the database's clock may run ahead of a writer's (see the module docstring).
DEFAULT_CLOCK_MARGIN = timedelta(minutes=1)
#: How long ``refresh`` waits for writers in flight before giving up its round.
DEFAULT_BARRIER_TIMEOUT_S = 30.0
#: How stale the watermarks used to *choose* a level may be (answers never use them).
_WATERMARK_CACHE_S = 5.0
#: The watermark of a level never materialized (migration 10 says 0001-01-01 too).
_MINUS_INFINITY = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Level:
    name: str
    width: timedelta
    table: str
    #: The table this level is computed from (None: raw readings).
    source: str | None


LEVELS: tuple[Level, ...] = (
    Level("1h", timedelta(hours=1), "readings_rollup_1h", None),
    Level("1d", timedelta(days=1), "readings_rollup_1d", "readings_rollup_1h"),
)


@dataclass(frozen=True, slots=True)
class RefreshReport:
    #: Per level, materialized up to (exclusive); empty when the round was skipped.
    materialized: dict[str, datetime] = field(default_factory=dict)
    #: Invalidation records consumed, and the level ranges (re)computed.
    invalidations: int = 0
    ranges: int = 0
    seconds: float = 0.0
    skipped: str | None = None


_COLUMNS = (
    "point, bucket, n, n_num, sum_num, min_num, max_num, first_time, first_num, first_txt, "
    "first_kind, last_time, last_num, last_txt, last_kind"
)

# Points found by a loose index scan of the primary key (a probe per point), then each
# point's own index range: the cost follows the range refreshed, not the table.
_FROM_RAW = """
WITH RECURSIVE pts(point) AS (
    (SELECT point FROM readings ORDER BY point LIMIT 1)
    UNION ALL
    SELECT (SELECT r.point FROM readings r WHERE r.point > pts.point ORDER BY r.point LIMIT 1)
    FROM pts WHERE pts.point IS NOT NULL
)
INSERT INTO {table} ({columns})
SELECT g.point, g.bucket, g.n, g.n_num, g.sum_num, g.min_num, g.max_num,
       g.first_time, f.num, f.txt, f.kind, g.last_time, l.num, l.txt, l.kind
FROM pts
CROSS JOIN LATERAL (
    SELECT pts.point, date_bin({width}, time, %(origin)s) AS bucket, count(*) AS n,
           count(num) AS n_num, sum(num) AS sum_num, min(num) AS min_num,
           max(num) AS max_num, min(time) AS first_time, max(time) AS last_time
    FROM readings
    WHERE point = pts.point AND time >= %(lo)s AND time < %(hi)s
    GROUP BY 2
) g
JOIN readings f ON f.point = g.point AND f.time = g.first_time
JOIN readings l ON l.point = g.point AND l.time = g.last_time
"""

# Positional GROUP BY: a bare ``bucket`` would name the source column, not the output.
_FROM_ROLLUP = """
INSERT INTO {table} ({columns})
SELECT g.point, g.bucket, g.n, g.n_num, g.sum_num, g.min_num, g.max_num,
       f.first_time, f.first_num, f.first_txt, f.first_kind,
       l.last_time, l.last_num, l.last_txt, l.last_kind
FROM (
    SELECT point, date_bin({width}, bucket, %(origin)s) AS bucket, sum(n)::bigint AS n,
           sum(n_num)::bigint AS n_num, sum(sum_num) AS sum_num, min(min_num) AS min_num,
           max(max_num) AS max_num, min(bucket) AS fb, max(bucket) AS lb
    FROM {source}
    WHERE bucket >= %(lo)s AND bucket < %(hi)s
    GROUP BY 1, 2
) g
JOIN {source} f ON f.point = g.point AND f.bucket = g.fb
JOIN {source} l ON l.point = g.point AND l.bucket = g.lb
"""

#: Per aggregate: (rollup partial columns, raw partial columns, final select, HAVING).
_PARTIALS: dict[str, tuple[str, str, str, str]] = {
    "count": (
        "r.n AS v",
        "count(*) AS v",
        "sum(v)::double precision, NULL::text, 2::smallint",
        "true",
    ),
    "sum": (
        "r.n_num AS c, r.sum_num AS v",
        "count(num) AS c, sum(num) AS v",
        "sum(v), NULL::text, 1::smallint",
        "sum(c) > 0",
    ),
    "avg": (
        "r.n_num AS c, r.sum_num AS v",
        "count(num) AS c, sum(num) AS v",
        "sum(v) / sum(c)::double precision, NULL::text, 1::smallint",
        "sum(c) > 0",
    ),
    "min": ("r.min_num AS v", "min(num) AS v", "min(v), NULL::text, 1::smallint", "count(v) > 0"),
    "max": ("r.max_num AS v", "max(num) AS v", "max(v), NULL::text, 1::smallint", "count(v) > 0"),
}

_QUERY_HEAD = """
WITH lvl AS (
    SELECT ab.a, ab.b, greatest(ab.a, least(ab.b, s.materialized)) AS m
    FROM readings_rollups s,
         LATERAL (SELECT
             CASE WHEN date_bin({width}, %(start)s, %(origin)s) = %(start)s
                  THEN %(start)s::timestamptz
                  ELSE date_bin({width}, %(start)s, %(origin)s) + {width} END AS a,
             date_bin({width}, %(end)s, %(origin)s) AS b) ab
    WHERE s.name = '{name}'
), bad AS (
    SELECT DISTINCT g AS bucket
    FROM lvl, readings_rollup_invalid i,
         generate_series(greatest(date_bin({width}, i.lo, %(origin)s), lvl.a),
                         least(date_bin({width}, i.hi, %(origin)s), lvl.m - {width}),
                         {width}) g
    WHERE i.hi >= lvl.a AND i.lo < lvl.m
), spans AS (
    SELECT %(start)s::timestamptz AS lo, a AS hi FROM lvl
    UNION ALL SELECT m, %(end)s::timestamptz FROM lvl
    UNION ALL SELECT bucket, bucket + {width} FROM bad
), parts AS (
    SELECT p.point, date_bin(%(bucket)s, r.bucket, %(origin)s) AS b, {rollup_cols}
    FROM unnest(%(points)s::uuid[]) AS p(point), lvl
    CROSS JOIN LATERAL (
        SELECT * FROM {table} x
        WHERE x.point = p.point AND x.bucket >= lvl.a AND x.bucket < lvl.m
        OFFSET 0  -- a fence: each point reads its own primary key range
    ) r
    WHERE NOT EXISTS (SELECT 1 FROM bad WHERE bad.bucket = r.bucket)
    UNION ALL
    SELECT p.point, x.*
    FROM unnest(%(points)s::uuid[]) AS p(point), spans s
    CROSS JOIN LATERAL ({raw}) x
    WHERE s.lo < s.hi
)
"""

_RAW_WHERE = "point = p.point AND time >= s.lo AND time < s.hi"


def _floor(t: datetime, width: timedelta, origin: datetime) -> datetime:
    return t - (t - origin) % width


def _ceil(t: datetime, width: timedelta, origin: datetime) -> datetime:
    floor = _floor(t, width, origin)
    return floor if floor == t else floor + width


def _merge(ranges: Sequence[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    out: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], hi))
        else:
            out.append((lo, hi))
    return out


class Rollups:
    """The rollups of one database: the write hook, the query, the refresh."""

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        origin: datetime,
        levels: Sequence[Level] = LEVELS,
        settle: timedelta = DEFAULT_SETTLE,
        clock_margin: timedelta = DEFAULT_CLOCK_MARGIN,
    ) -> None:
        if settle <= clock_margin:
            raise ValueError("settle must exceed the clock margin")
        self._pool = pool
        self._origin = origin
        self.levels = tuple(levels)
        self._settle = settle
        self._margin = clock_margin
        self._cache: tuple[float, dict[str, datetime]] | None = None
        self._cache_lock = threading.Lock()

    # -- writes ----------------------------------------------------------------------------

    def note_write(self, conn: psycopg.Connection[Any], oldest: datetime, newest: datetime) -> bool:
        """In the writer's transaction, after its rows are in: record the batch's time range
        if it reaches below the threshold. Returns whether a statement ran."""
        if oldest >= datetime.now(UTC) - self._settle + self._margin:
            return False
        conn.execute(
            "INSERT INTO readings_rollup_invalid (lo, hi) SELECT %(lo)s, %(hi)s "
            "WHERE %(lo)s < (SELECT max(threshold) FROM readings_rollups)",
            {"lo": oldest, "hi": newest},
        )
        return True

    def invalidate(self, lo: datetime, hi: datetime) -> None:
        """Have readings in [lo, hi] re-computed: for bulk loads that bypass the store."""
        with translate_errors("telemetry rollups"), self._pool.connection() as conn:
            conn.execute("INSERT INTO readings_rollup_invalid (lo, hi) VALUES (%s, %s)", (lo, hi))

    # -- reads -----------------------------------------------------------------------------

    def level_for(self, bucket: timedelta, start: datetime, end: datetime) -> Level | None:
        """The level leaving the least to aggregate raw (by watermarks a few seconds old);
        None when no level fits the bucket or none is materialized inside the range."""
        marks = self.watermarks()
        best: Level | None = None
        best_raw = end - start
        for level in sorted(self.levels, key=lambda lv: lv.width, reverse=True):
            w = level.width
            if bucket % w:
                continue
            a, b = _ceil(start, w, self._origin), _floor(end, w, self._origin)
            if a >= b:
                continue
            m = min(max(marks.get(level.name, _MINUS_INFINITY), a), b)
            raw = (a - start) + (end - m)
            if raw < best_raw:
                best, best_raw = level, raw
        return best

    def query_sql(self, level: Level, agg: str) -> bytes:
        """Bucketed ``agg`` over rollup rows and raw readings; the parameters of the raw
        query (points, start, end, bucket, origin, limit) and its columns and order."""
        width = interval(level.width)
        bucket_raw = "date_bin(%(bucket)s, time, %(origin)s)"
        if agg in ("first", "last"):
            desc = "" if agg == "first" else " DESC"
            prefix = agg
            rollup_cols = f"r.{prefix}_time AS t, r.{prefix}_num AS num, r.{prefix}_txt AS txt, r.{prefix}_kind AS kind"
            raw = (
                f"SELECT DISTINCT ON (1) {bucket_raw} AS b, time AS t, num, txt, kind "
                f"FROM readings WHERE {_RAW_WHERE} ORDER BY 1, time{desc}"
            )
            tail = (
                "SELECT DISTINCT ON (point, b) point, b, num, txt, kind FROM parts "
                f"ORDER BY point, b, t{desc} LIMIT %(limit)s"
            )
        else:
            rollup_cols, raw_cols, final, having = _PARTIALS[agg]
            raw = (
                f"SELECT {bucket_raw} AS b, {raw_cols} FROM readings WHERE {_RAW_WHERE} GROUP BY 1"
            )
            tail = (
                f"SELECT point, b, {final} FROM parts GROUP BY point, b HAVING {having} "
                "ORDER BY point, b LIMIT %(limit)s"
            )
        head = _QUERY_HEAD.format(
            width=width, name=level.name, table=level.table, rollup_cols=rollup_cols, raw=raw
        )
        return (head + tail).encode()

    def watermarks(self, *, fresh: bool = False) -> dict[str, datetime]:
        """Per level, materialized up to (exclusive; ``datetime.min`` when never)."""
        with self._cache_lock:
            cached = self._cache
        if not fresh and cached is not None and time.monotonic() - cached[0] < _WATERMARK_CACHE_S:
            return cached[1]
        with translate_errors("telemetry rollups"), self._pool.connection() as conn:
            rows = conn.execute("SELECT name, materialized FROM readings_rollups").fetchall()
        marks = {name: max(m, _MINUS_INFINITY) for name, m in rows}
        with self._cache_lock:
            self._cache = (time.monotonic(), marks)
        return marks

    def status(self) -> dict[str, object]:
        """For ``/health``: per level, materialized up to when and last refreshed; pending
        invalidation records."""
        with translate_errors("telemetry rollups"), self._pool.connection() as conn:
            rows = conn.execute(
                "SELECT name, materialized, refreshed FROM readings_rollups ORDER BY width"
            ).fetchall()
            pending = conn.execute("SELECT count(*) FROM readings_rollup_invalid").fetchone()
        return {
            "levels": {
                name: {
                    "materialized_until": None if m <= _MINUS_INFINITY else m.isoformat(),
                    "refreshed": r.isoformat() if r else None,
                }
                for name, m, r in rows
            },
            "pending_invalidations": int(pending[0]) if pending else 0,
        }

    # -- refresh ---------------------------------------------------------------------------

    def refresh(
        self,
        *,
        now: datetime | None = None,
        barrier_timeout_s: float = DEFAULT_BARRIER_TIMEOUT_S,
    ) -> RefreshReport:
        """One round: materialize complete buckets up to ``now - settle`` (the database's
        now unless given) and re-compute invalidated ones. See the module docstring."""
        t0 = time.perf_counter()
        with translate_errors("telemetry rollup refresh"), self._pool.connection() as conn:
            conn.autocommit = True
            try:
                row = conn.execute(
                    "SELECT pg_try_advisory_lock(%s)", (REFRESH_LOCK_KEY,)
                ).fetchone()
                if not row or not row[0]:
                    return RefreshReport(skipped="another refresh is running")
                try:
                    report = self._refresh(conn, now, barrier_timeout_s)
                finally:
                    conn.execute("SELECT pg_advisory_unlock(%s)", (REFRESH_LOCK_KEY,))
            finally:
                conn.autocommit = False
        with self._cache_lock:
            self._cache = None
        if report.skipped is None:
            return RefreshReport(
                report.materialized,
                report.invalidations,
                report.ranges,
                time.perf_counter() - t0,
            )
        return report

    def _refresh(
        self, conn: psycopg.Connection[Any], now: datetime | None, barrier_timeout_s: float
    ) -> RefreshReport:
        if now is None:
            row = conn.execute("SELECT now()").fetchone()
            assert row is not None
            now = row[0]
        assert now is not None
        target = _floor(now - self._settle, self.levels[0].width, self._origin)
        # 1. The threshold moves (and commits) before anything is read.
        for level in self.levels:
            conn.execute(
                "UPDATE readings_rollups SET threshold = greatest(threshold, %s) WHERE name = %s",
                (_floor(target, level.width, self._origin), level.name),
            )
        # 2. Writers that may have read the old threshold end before the snapshot.
        if not self._wait_for_writers(conn, barrier_timeout_s):
            return RefreshReport(skipped="writers still in flight")
        # 3. One snapshot for everything read, deleted and written.
        conn.isolation_level = IsolationLevel.REPEATABLE_READ
        conn.autocommit = False
        try:
            with conn.transaction():
                invalid = conn.execute(
                    "DELETE FROM readings_rollup_invalid RETURNING lo, hi"
                ).fetchall()
                state = {
                    name: (threshold, materialized)
                    for name, threshold, materialized in conn.execute(
                        "SELECT name, threshold, materialized FROM readings_rollups"
                    ).fetchall()
                }
                done: dict[str, datetime] = {}
                count = 0
                for level in self.levels:
                    threshold, old = state[level.name]
                    new = max(threshold, old)
                    w = level.width
                    ranges = [
                        (_floor(lo, w, self._origin), min(_floor(hi, w, self._origin) + w, old))
                        for lo, hi in invalid
                        if lo < old
                    ]
                    if new > old:
                        ranges.append((old, new))
                    merged = _merge([r for r in ranges if r[0] < r[1]])
                    for lo, hi in merged:
                        self._compute(conn, level, lo, hi)
                    count += len(merged)
                    conn.execute(
                        "UPDATE readings_rollups SET materialized = %s, refreshed = now() "
                        "WHERE name = %s",
                        (new, level.name),
                    )
                    done[level.name] = new
        finally:
            conn.autocommit = True
            conn.isolation_level = None
        return RefreshReport(done, len(invalid), count)

    def _compute(
        self, conn: psycopg.Connection[Any], level: Level, lo: datetime, hi: datetime
    ) -> None:
        params = {"lo": lo, "hi": hi, "origin": self._origin}
        conn.execute(
            f"DELETE FROM {level.table} WHERE bucket >= %(lo)s AND bucket < %(hi)s".encode(),
            params,
        )
        template = _FROM_RAW if level.source is None else _FROM_ROLLUP
        sql = template.format(
            table=level.table, source=level.source, columns=_COLUMNS, width=interval(level.width)
        )
        conn.execute(sql.encode(), params)

    @staticmethod
    def _wait_for_writers(conn: psycopg.Connection[Any], timeout_s: float) -> bool:
        """Wait until the transactions now holding a write lock on ``readings`` have ended."""
        sql = (
            "SELECT coalesce(array_agg(virtualtransaction), '{}') FROM pg_locks "
            "WHERE locktype = 'relation' AND relation = 'readings'::regclass "
            "AND mode = 'RowExclusiveLock' AND granted AND pid <> pg_backend_pid()"
        )
        row = conn.execute(sql).fetchone()
        waiting: list[str] = list(row[0]) if row else []
        deadline = time.monotonic() + timeout_s
        while waiting:
            if time.monotonic() > deadline:
                log.warning("rollup refresh: %d writers still in flight", len(waiting))
                return False
            time.sleep(0.005)
            row = conn.execute(sql + " AND virtualtransaction = ANY(%s)", (waiting,)).fetchone()
            waiting = list(row[0]) if row else []
        return True


class RollupRefresher:
    """``refresh`` every ``interval_s`` on a thread of its own (``start``/``stop``)."""

    def __init__(self, rollups: Rollups, interval_s: float) -> None:
        self._rollups = rollups
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last: RefreshReport | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="rollup-refresher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(60)
            self._thread = None

    def _loop(self) -> None:
        while True:
            try:
                self.last = self._rollups.refresh()
            except Exception:  # keep refreshing; the next round retries
                log.exception("rollup refresh failed")
            if self._stop.wait(self._interval):
                return
