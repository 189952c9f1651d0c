"""Platform-kept rollups on plain PostgreSQL: every answer equals the raw one.

Each test runs in a database of its own on the session's server (the rollups' watermark
is per database and only moves forward), emptied by the TRUNCATE trigger between tests.
The reference is a TelemetryStore on the same data without rollups.
"""

from __future__ import annotations

import math
import random
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from app.domain.telemetry import Reading, Value
from app.telemetry.db import connect_pool, detect_features, migrate
from app.telemetry.readings import AGGS, ORIGIN, Agg, BucketRow, TelemetryStore
from app.telemetry.rollups import RollupRefresher, Rollups
from tests.conftest import PgServer

T0 = datetime(2025, 3, 3, tzinfo=UTC)  # a Monday: aligned to hours, days and ORIGIN's weeks
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
EVERY_AGG: tuple[Agg, ...] = ("avg", "min", "max", "sum", "count", "first", "last")


@pytest.fixture(scope="module")
def rollup_pool(pg_server: PgServer) -> Iterator[ConnectionPool]:
    name = f"rollups_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())
    pool = connect_pool(make_conninfo(pg_server.dsn, dbname=name), max_size=4, timeout_s=5)
    try:
        migrate(pool)
        yield pool
    finally:
        pool.close()
        with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)".encode())


@dataclass
class Stores:
    pool: ConnectionPool
    rollups: Rollups
    store: TelemetryStore
    raw: TelemetryStore

    def pending(self) -> int:
        with self.pool.connection() as conn:
            row = conn.execute("SELECT count(*) FROM readings_rollup_invalid").fetchone()
        return int(row[0]) if row else 0


@pytest.fixture
def stores(rollup_pool: ConnectionPool) -> Stores:
    with rollup_pool.connection() as conn:
        conn.execute("TRUNCATE readings, latest")  # the trigger resets the rollups
    features = detect_features(rollup_pool)
    rollups = Rollups(rollup_pool, origin=ORIGIN)
    return Stores(
        rollup_pool,
        rollups,
        TelemetryStore(rollup_pool, features, rollups=rollups),
        TelemetryStore(rollup_pool, features),
    )


@dataclass(frozen=True)
class Points:
    floats: uuid.UUID
    ints: uuid.UUID
    bools: uuid.UUID
    texts: uuid.UUID
    mixed: uuid.UUID
    sparse: uuid.UUID

    def all(self) -> list[uuid.UUID]:
        return [self.floats, self.ints, self.bools, self.texts, self.mixed, self.sparse]


def make_data(days: int = 3, step_min: int = 7, seed: int = 1) -> tuple[Points, list[Reading]]:
    """Every kind of value; readings exactly on bucket starts and a microsecond before
    bucket ends (first/last at the edges); a point with empty hours and days."""
    rnd = random.Random(seed)
    pts = Points(*(uuid.uuid4() for _ in range(6)))
    out: list[Reading] = []
    mixed: list[Value] = [1.25, 7, True, False, None, "on", 'quote " and \\', -0.1]
    for i in range(0, days * 24 * 60, step_min):
        t = T0 + timedelta(minutes=i)
        out.append(Reading(pts.floats, t, rnd.uniform(-50, 150)))
        out.append(Reading(pts.ints, t, rnd.randint(-1000, 1000)))
        out.append(Reading(pts.bools, t, rnd.random() < 0.3))
        out.append(Reading(pts.texts, t, rnd.choice(["auto", "off", "NULL", "{a,b}", ""])))
        out.append(Reading(pts.mixed, t, rnd.choice(mixed)))
        if (i // 60) % 5 == 0 and (i // 1440) != 1:  # every fifth hour, none on day 2
            out.append(Reading(pts.sparse, t, rnd.uniform(0, 1)))
    for h in range(days * 24):
        edge = T0 + h * HOUR
        out.append(Reading(pts.floats, edge - timedelta(microseconds=1), rnd.uniform(0, 1)))
        out.append(Reading(pts.texts, edge + timedelta(seconds=1), f"edge {h}"))
    return pts, out


def assert_same(
    s: Stores, points: list[uuid.UUID], start: datetime, end: datetime, bucket: timedelta
) -> None:
    """Every aggregate through the rollup-aware store equals the raw store's answer:
    exactly, but for sums and averages of fractional floats (float rounding)."""
    assert set(EVERY_AGG) == set(AGGS)
    for agg in EVERY_AGG:
        got = s.store.range_many(points=points, start=start, end=end, bucket=bucket, agg=agg)
        want = s.raw.range_many(points=points, start=start, end=end, bucket=bucket, agg=agg)
        for p in points:
            g: list[BucketRow] = got[p]  # type: ignore[assignment]
            w: list[BucketRow] = want[p]  # type: ignore[assignment]
            assert [r.start for r in g] == [r.start for r in w], (agg, p)
            for a, b in zip(g, w, strict=True):
                assert type(a.value) is type(b.value), (agg, a, b)
                if agg in ("sum", "avg") and isinstance(a.value, float) and a.value != b.value:
                    assert isinstance(b.value, float)
                    assert math.isclose(a.value, b.value, rel_tol=1e-12), (agg, a, b)
                else:
                    assert a.value == b.value, (agg, a, b)


def test_equal_to_raw_for_every_agg_and_kind_across_the_watermark(stores: Stores) -> None:
    pts, data = make_data()
    stores.store.write(readings=data)
    report = stores.rollups.refresh(now=T0 + DAY + 13 * HOUR + timedelta(minutes=30))
    assert report.materialized == {"1h": T0 + DAY + 13 * HOUR, "1d": T0 + DAY}
    points = pts.all()
    cases = [
        (T0, T0 + 3 * DAY, HOUR),  # straddles both watermarks
        (T0, T0 + 3 * DAY, DAY),
        (T0, T0 + DAY, DAY),  # all materialized: the daily level alone
        (T0 + timedelta(minutes=17), T0 + 2 * DAY + timedelta(hours=5, minutes=3), 2 * HOUR),
        (T0 - 3 * DAY, T0 + 5 * DAY, 7 * DAY),
        (T0 + 10 * HOUR, T0 + 11 * HOUR, HOUR),  # one materialized bucket
    ]
    for start, end, bucket in cases:
        assert stores.rollups.level_for(bucket, start, end) is not None, (start, end, bucket)
        assert_same(stores, points, start, end, bucket)
    # The daily answer for a materialized day comes from the daily level ...
    level = stores.rollups.level_for(DAY, T0, T0 + DAY)
    assert level is not None and level.name == "1d"
    # ... and the sparse point's empty hours and day are absent on both paths.
    hourly = stores.store.range(point=pts.sparse, start=T0, end=T0 + 3 * DAY, bucket=HOUR)
    assert [r.start for r in hourly] == [
        T0 + h * HOUR for h in range(72) if h % 5 == 0 and h // 24 != 1
    ]
    daily = stores.store.range(point=pts.sparse, start=T0, end=T0 + 3 * DAY, bucket=DAY)
    assert [r.start for r in daily] == [T0, T0 + 2 * DAY]


def test_answers_come_from_the_rollup_rows(stores: Stores) -> None:
    """A tampered rollup row shows in the answer: the rollups are really read."""
    pts, data = make_data(days=1)
    stores.store.write(readings=data)
    stores.rollups.refresh(now=T0 + 2 * DAY)
    with stores.pool.connection() as conn:
        conn.execute(
            "UPDATE readings_rollup_1h SET max_num = 1e9 WHERE point = %s AND bucket = %s",
            (pts.floats, T0 + 5 * HOUR),
        )
    got = stores.store.range(point=pts.floats, start=T0, end=T0 + DAY, bucket=HOUR, agg="max")
    assert got[5].value == 1e9
    want = stores.raw.range(point=pts.floats, start=T0, end=T0 + DAY, bucket=HOUR, agg="max")
    assert want[5].value != 1e9


def test_late_data_is_exact_before_and_after_the_next_refresh(stores: Stores) -> None:
    pts, data = make_data(days=2)
    stores.store.write(readings=data)
    stores.rollups.refresh(now=T0 + 2 * DAY)
    assert stores.pending() == 0
    late = [
        Reading(pts.floats, T0 + 3 * HOUR + timedelta(seconds=1), 1e6),  # new max
        Reading(pts.ints, T0 + 20 * HOUR + timedelta(minutes=59, seconds=59), 5),  # new last
        Reading(pts.texts, T0 + DAY + timedelta(microseconds=1), "first!"),  # new first
        Reading(pts.mixed, T0 + 30 * HOUR + timedelta(seconds=3), None),
    ]
    stores.store.write(readings=late)
    assert stores.pending() == 1  # one range per batch, recorded with the readings
    for bucket in (HOUR, DAY, 6 * HOUR):
        assert_same(stores, pts.all(), T0, T0 + 2 * DAY, bucket)
    hourly_max = stores.store.range(
        point=pts.floats, start=T0, end=T0 + DAY, bucket=HOUR, agg="max"
    )
    assert hourly_max[3].value == 1e6
    report = stores.rollups.refresh(now=T0 + 2 * DAY)
    assert report.invalidations == 1 and stores.pending() == 0
    for bucket in (HOUR, DAY):
        assert_same(stores, pts.all(), T0, T0 + 2 * DAY, bucket)
    with stores.pool.connection() as conn:
        row = conn.execute(
            "SELECT max_num FROM readings_rollup_1d WHERE point = %s AND bucket = %s",
            (pts.floats, T0),
        ).fetchone()
    assert row == (1e6,)


def test_resent_duplicates_change_nothing(stores: Stores) -> None:
    pts, data = make_data(days=1)
    stores.store.write(readings=data)
    stores.rollups.refresh(now=T0 + 2 * DAY)
    result = stores.store.write(readings=data[:500])
    assert result.inserted == 0
    assert stores.pending() == 0  # nothing stored, nothing to re-compute
    # A re-send with other values: the first value stays, on both paths.
    changed = [Reading(r.point, r.time, 42.0) for r in data[:300]]
    assert stores.store.write(readings=changed).inserted == 0
    assert_same(stores, pts.all(), T0, T0 + DAY, HOUR)
    assert_same(stores, pts.all(), T0, T0 + DAY, DAY)


def test_first_and_last_at_bucket_edges_and_equal_times(stores: Stores) -> None:
    p, q = uuid.uuid4(), uuid.uuid4()
    readings = [
        Reading(p, T0, "start"),
        Reading(p, T0 + HOUR - timedelta(microseconds=1), "end of hour 0"),
        Reading(p, T0 + HOUR, None),
        Reading(p, T0 + 2 * HOUR - timedelta(microseconds=1), 3),
        Reading(q, T0, True),  # the same times on another point
        Reading(q, T0 + HOUR - timedelta(microseconds=1), 2.5),
        Reading(q, T0 + HOUR, False),
    ]
    stores.store.write(readings=readings)
    stores.rollups.refresh(now=T0 + DAY + HOUR)
    first = stores.store.range_many(points=[p, q], start=T0, end=T0 + DAY, bucket=HOUR, agg="first")
    last = stores.store.range_many(points=[p, q], start=T0, end=T0 + DAY, bucket=HOUR, agg="last")
    assert [r.value for r in first[p]] == ["start", None]
    assert [r.value for r in last[p]] == ["end of hour 0", 3]
    assert [r.value for r in first[q]] == [True, False]
    assert [r.value for r in last[q]] == [2.5, False]
    daily = stores.store.range_many(points=[p, q], start=T0, end=T0 + DAY, bucket=DAY, agg="last")
    assert [r.value for r in daily[p]] == [3] and [r.value for r in daily[q]] == [False]
    assert_same(stores, [p, q], T0, T0 + DAY, HOUR)
    assert_same(stores, [p, q], T0, T0 + DAY, DAY)


def test_fresh_data_skips_the_write_hook_and_shows_at_once(stores: Stores) -> None:
    now = datetime.now(UTC)
    p = uuid.uuid4()
    base = now - timedelta(days=2)
    stores.store.write(
        readings=[Reading(p, base + i * timedelta(minutes=9), float(i)) for i in range(300)]
    )
    report = stores.rollups.refresh()  # the database's clock
    mark = report.materialized["1h"]
    assert now - timedelta(minutes=5) - HOUR <= mark <= now
    with stores.pool.connection() as conn:
        assert stores.rollups.note_write(conn, now - timedelta(seconds=5), now) is False
        assert stores.rollups.note_write(conn, now - HOUR, now) is True
        conn.rollback()
    stores.store.write(readings=[Reading(p, now - timedelta(seconds=2), 1e5)])
    assert stores.pending() == 0
    day_start = ORIGIN + ((base - ORIGIN) // DAY) * DAY
    end = day_start + 4 * DAY
    assert_same(stores, [p], day_start, end, HOUR)
    assert_same(stores, [p], day_start, end, DAY)
    hourly = stores.store.range(point=p, start=day_start, end=end, bucket=HOUR, agg="max")
    assert hourly[-1].value == 1e5


def test_a_write_in_flight_during_a_refresh_is_not_lost(stores: Stores) -> None:
    """The writer inserts below the coming threshold and checks it before the refresh
    moves it (so it records nothing); the refresh must wait for it and include its rows."""
    pts, data = make_data(days=2)
    stores.store.write(readings=data)
    stores.rollups.refresh(now=T0 + DAY)  # materialized up to T0 + 1 day
    late_time = T0 + DAY + 5 * HOUR + timedelta(seconds=30)
    with stores.pool.connection() as conn, conn.transaction():
        conn.execute(
            "INSERT INTO readings (point, time, num, txt, kind) VALUES (%s, %s, 1e7, NULL, 1)",
            (pts.floats, late_time),
        )
        assert stores.rollups.note_write(conn, late_time, late_time) is True
        assert stores.pending() == 0  # below no threshold yet: nothing recorded
        reports = []
        refresh = threading.Thread(
            target=lambda: reports.append(stores.rollups.refresh(now=T0 + 2 * DAY))
        )
        refresh.start()
        time.sleep(0.5)
        assert refresh.is_alive(), "the refresh did not wait for the writer in flight"
    refresh.join(30)
    assert reports and reports[0].skipped is None
    assert reports[0].materialized["1h"] == T0 + 2 * DAY - HOUR
    with stores.pool.connection() as conn:
        row = conn.execute(
            "SELECT max_num FROM readings_rollup_1h WHERE point = %s AND bucket = %s",
            (pts.floats, T0 + DAY + 5 * HOUR),
        ).fetchone()
    assert row == (1e7,)
    assert_same(stores, pts.all(), T0, T0 + 2 * DAY, HOUR)


def test_a_write_after_the_threshold_moved_is_recorded(stores: Stores) -> None:
    pts, data = make_data(days=2)
    stores.store.write(readings=data)
    stores.rollups.refresh(now=T0 + DAY)
    # Threshold moved past the write but materialization not run yet: the writer records.
    with stores.pool.connection() as conn:
        conn.execute("UPDATE readings_rollups SET threshold = %s", (T0 + 2 * DAY,))
    stores.store.write(readings=[Reading(pts.ints, T0 + DAY + 2 * HOUR + timedelta(seconds=1), 9)])
    assert stores.pending() == 1
    stores.rollups.refresh(now=T0 + DAY)
    assert stores.pending() == 0
    assert_same(stores, pts.all(), T0, T0 + 2 * DAY, HOUR)


def test_delete_invalidates_and_truncate_resets(stores: Stores) -> None:
    pts, data = make_data(days=1)
    stores.store.write(readings=data)
    stores.rollups.refresh(now=T0 + 2 * DAY)
    with stores.pool.connection() as conn:
        conn.execute(
            "DELETE FROM readings WHERE point = %s AND time >= %s AND time < %s",
            (pts.floats, T0 + 4 * HOUR, T0 + 5 * HOUR),
        )
    assert stores.pending() == 1
    assert_same(stores, pts.all(), T0, T0 + DAY, HOUR)
    stores.rollups.refresh(now=T0 + 2 * DAY)
    hours = stores.store.range(point=pts.floats, start=T0, end=T0 + DAY, bucket=HOUR)
    assert T0 + 4 * HOUR not in {r.start for r in hours}
    with stores.pool.connection() as conn:
        conn.execute("TRUNCATE readings")
        counts = conn.execute(
            "SELECT (SELECT count(*) FROM readings_rollup_1h), "
            "(SELECT count(*) FROM readings_rollup_1d), "
            "(SELECT min(materialized) = max(materialized) FROM readings_rollups)"
        ).fetchone()
    assert counts == (0, 0, True)
    levels = stores.rollups.status()["levels"]
    assert isinstance(levels, dict)
    assert [v["materialized_until"] for v in levels.values()] == [None, None]


def test_the_refresher_thread_refreshes_until_stopped(stores: Stores) -> None:
    p = uuid.uuid4()
    stores.store.write(
        readings=[Reading(p, T0 + i * timedelta(minutes=30), float(i)) for i in range(10)]
    )
    refresher = RollupRefresher(stores.rollups, interval_s=0.05)
    refresher.start()
    try:
        deadline = time.monotonic() + 10
        while refresher.last is None and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        refresher.stop()
    assert refresher.last is not None and refresher.last.skipped is None
    status = stores.rollups.status()
    levels = status["levels"]
    assert isinstance(levels, dict) and levels["1h"]["materialized_until"] is not None
    assert_same(stores, [p], T0, T0 + DAY, HOUR)
