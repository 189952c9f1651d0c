"""TelemetryStore against a real PostgreSQL (plain: TimescaleDB is not installable here)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from psycopg_pool import ConnectionPool

from app.domain.telemetry import Reading, Value
from app.errors import InvalidInputError, UnavailableError
from app.telemetry.db import MIGRATIONS, connect_pool, detect_features, migrate
from app.telemetry.readings import BucketRow, TelemetryStore
from tests.conftest import PgServer

T0 = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)  # aligned to hours and days


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def series(point: uuid.UUID, values: list[Value], *, step_min: float = 1) -> list[Reading]:
    return [Reading(point, at(i * step_min), v) for i, v in enumerate(values)]


def test_migrations_are_recorded_and_idempotent(pg_pool: ConnectionPool) -> None:
    migrate(pg_pool)  # whatever the session fixture did, the schema is now current
    assert migrate(pg_pool) == []
    with pg_pool.connection() as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY 1")]
    assert versions == [m.version for m in MIGRATIONS]


def test_features_on_plain_postgres(pg_pool: ConnectionPool) -> None:
    features = detect_features(pg_pool)
    assert features.server_version_num >= 140000
    assert not features.timescaledb_installed
    assert not features.hypertables and not features.continuous_aggregates


def test_write_is_idempotent_and_counts_duplicates(telemetry_store: TelemetryStore) -> None:
    p = uuid.uuid4()
    batch = series(p, [1.0, 2.0, 3.0])
    before = telemetry_store.count()
    first = telemetry_store.write(readings=batch)
    assert (first.inserted, first.duplicates) == (3, 0)
    again = telemetry_store.write(readings=[*batch, Reading(p, at(1), 99.0)])
    assert (again.inserted, again.duplicates, again.latest_updated) == (0, 4, 0)
    assert telemetry_store.count() == before + 3
    # The first value written for a (point, time) wins.
    assert [r.value for r in telemetry_store.range(point=p, start=T0, end=at(10))] == [
        1.0,
        2.0,
        3.0,
    ]


def test_duplicates_inside_one_batch(telemetry_store: TelemetryStore) -> None:
    p = uuid.uuid4()
    result = telemetry_store.write(readings=[Reading(p, T0, 1.0), Reading(p, T0, 1.0)])
    assert (result.inserted, result.duplicates) == (1, 1)


def test_out_of_order_and_late_data(telemetry_store: TelemetryStore) -> None:
    p = uuid.uuid4()
    telemetry_store.write(readings=[Reading(p, at(5), 5.0), Reading(p, at(1), 1.0)])
    late = telemetry_store.write(readings=[Reading(p, at(3), 3.0), Reading(p, at(0), 0.0)])
    assert late.inserted == 2 and late.latest_updated == 0
    got = telemetry_store.range(point=p, start=T0, end=at(10))
    assert [(r.time, r.value) for r in got] == [(at(m), float(m)) for m in (0, 1, 3, 5)]


def test_latest_only_moves_forward(telemetry_store: TelemetryStore) -> None:
    p, q = uuid.uuid4(), uuid.uuid4()
    telemetry_store.write(readings=[Reading(p, at(10), 10.0), Reading(q, at(1), "on")])
    assert telemetry_store.latest(points=[p])[p] == Reading(p, at(10), 10.0)
    moved = telemetry_store.write(readings=[Reading(p, at(5), 5.0)])
    assert moved.latest_updated == 0
    assert telemetry_store.latest(points=[p])[p].value == 10.0
    moved = telemetry_store.write(readings=[Reading(p, at(11), 11.0), Reading(p, at(12), 12.0)])
    assert moved.latest_updated == 1
    latest = telemetry_store.latest(points=[p, q, uuid.uuid4()])
    assert latest == {p: Reading(p, at(12), 12.0), q: Reading(q, at(1), "on")}


def test_value_types_round_trip(telemetry_store: TelemetryStore) -> None:
    p = uuid.uuid4()
    values: list[Value] = [1.5, 7, True, False, "occupied", None, "", -(2**53)]
    telemetry_store.write(readings=series(p, values))
    got = [r.value for r in telemetry_store.range(point=p, start=T0, end=at(60))]
    assert got == values
    assert [type(v) for v in got] == [type(v) for v in values]
    assert telemetry_store.latest(points=[p])[p].value == -(2**53)


def test_latest_keeps_every_value_exactly(telemetry_store: TelemetryStore) -> None:
    """The latest upsert sends array literals: texts that look like array syntax, exact
    floats, integers, booleans and offsets with microseconds come back unchanged."""
    from datetime import timezone

    values: list[Value] = [
        "NULL", "null", "{a,b}", 'say "hi"', "back\\slash\\", "", " padded ", "a,b}",
        "déjà vu ✓", "\\N", 0.1, -0.0, 5e-324, 1.7976931348623157e308, 2**53, True, False, None,
    ]
    points = [uuid.uuid4() for _ in values]
    when = datetime(2027, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=2)))
    telemetry_store.write(
        readings=[Reading(p, when, v) for p, v in zip(points, values, strict=True)]
    )
    latest = telemetry_store.latest(points=points)
    for p, v in zip(points, values, strict=True):
        assert latest[p].time == when
        assert latest[p].value == v and type(latest[p].value) is type(v), (v, latest[p].value)
    assert str(latest[points[11]].value) == "-0.0"


def test_values_that_cannot_be_stored_are_invalid_input(telemetry_store: TelemetryStore) -> None:
    p = uuid.uuid4()
    with pytest.raises(InvalidInputError):
        telemetry_store.write(readings=[Reading(p, T0, 2**60)])
    with pytest.raises(InvalidInputError):
        telemetry_store.write(readings=[Reading(p, T0, "nul\x00byte")])
    assert telemetry_store.latest(points=[p]) == {}


def test_bucketed_aggregates(telemetry_store: TelemetryStore) -> None:
    p = uuid.uuid4()
    # Bucket 1 (00:00-00:10): 1, 2, 3, None, "x"; bucket 2 (00:10-00:20): True, 4; bucket 3
    # (00:20-00:30): only a string; bucket 4 empty.
    telemetry_store.write(
        readings=[
            Reading(p, at(9), 3),
            Reading(p, at(0), 1.0),
            Reading(p, at(2), 2.0),
            Reading(p, at(5), None),
            Reading(p, at(7), "x"),
            Reading(p, at(10), True),
            Reading(p, at(15), 4.0),
            Reading(p, at(25), "fault"),
        ]
    )

    def agg(name: str) -> list[tuple[int, Value]]:
        rows = telemetry_store.range(
            point=p,
            start=T0,
            end=at(40),
            bucket=timedelta(minutes=10),
            agg=name,  # type: ignore[arg-type]
        )
        assert all(isinstance(r, BucketRow) for r in rows)
        return [(int((r.start - T0).total_seconds() // 60), r.value) for r in rows]

    assert agg("avg") == [(0, 2.0), (10, 2.5)]
    assert agg("min") == [(0, 1.0), (10, 1.0)]
    assert agg("max") == [(0, 3.0), (10, 4.0)]
    assert agg("sum") == [(0, 6.0), (10, 5.0)]
    assert agg("count") == [(0, 5), (10, 2), (20, 1)]
    assert agg("first") == [(0, 1.0), (10, True), (20, "fault")]
    assert agg("last") == [(0, 3), (10, 4.0), (20, "fault")]


def test_bucket_boundaries_follow_the_origin_not_the_start(
    telemetry_store: TelemetryStore,
) -> None:
    p = uuid.uuid4()
    telemetry_store.write(readings=series(p, [1.0] * 120))  # 2 h, one a minute
    rows = telemetry_store.range(
        point=p, start=at(30), end=at(120), bucket=timedelta(hours=1), agg="count"
    )
    assert [(r.start, r.value) for r in rows] == [(T0, 30), (at(60), 60)]


def test_range_limit_and_bounds(telemetry_store: TelemetryStore) -> None:
    p = uuid.uuid4()
    telemetry_store.write(readings=series(p, [float(i) for i in range(10)]))
    got = telemetry_store.range(point=p, start=at(2), end=at(8), limit=3)
    assert [r.value for r in got] == [2.0, 3.0, 4.0]
    assert len(telemetry_store.range(point=p, start=at(2), end=at(8))) == 6  # end exclusive
    with pytest.raises(InvalidInputError):
        telemetry_store.range(point=p, start=at(8), end=at(2))
    with pytest.raises(InvalidInputError):
        telemetry_store.range(point=p, start=T0, end=at(1), agg="median")  # type: ignore[arg-type]


def test_range_many_in_one_query(telemetry_store: TelemetryStore) -> None:
    points = [uuid.uuid4() for _ in range(50)]
    readings = [
        Reading(p, at(m), float(i * 100 + m)) for i, p in enumerate(points) for m in range(30)
    ]
    telemetry_store.write(readings=readings)
    empty = uuid.uuid4()
    hourly = telemetry_store.range_many(
        points=[*points, empty], start=T0, end=at(60), bucket=timedelta(minutes=15), agg="max"
    )
    assert hourly[empty] == []
    assert [r.value for r in hourly[points[7]]] == [714.0, 729.0]
    raw = telemetry_store.range_many(points=points[:3], start=T0, end=at(60), limit=2)
    assert {p: [r.value for r in rows] for p, rows in raw.items()} == {
        points[0]: [0.0, 1.0],
        points[1]: [100.0, 101.0],
        points[2]: [200.0, 201.0],
    }


def test_restart_keeps_data(pg_server: PgServer, telemetry_store: TelemetryStore) -> None:
    p = uuid.uuid4()
    telemetry_store.write(readings=[Reading(p, T0, 42.0)])
    pg_server.server.stop()
    assert not pg_server.server.running
    with pytest.raises(UnavailableError):
        telemetry_store.latest(points=[p])
    assert pg_server.server.start() == pg_server.dsn  # same port, remembered
    pool = connect_pool(pg_server.dsn)
    try:
        store = TelemetryStore(pool, detect_features(pool))
        assert store.latest(points=[p]) == {p: Reading(p, T0, 42.0)}
        assert migrate(pool) == []
    finally:
        pool.close()
    # The session pool's connections died with the server; the pool checks and replaces them.
    assert telemetry_store.latest(points=[p])[p].value == 42.0


def test_unreachable_server_is_unavailable() -> None:
    with pytest.raises(UnavailableError) as info:
        connect_pool("host=127.0.0.1 port=1 dbname=x user=x password=secret connect_timeout=2")
    assert "secret" not in info.value.detail


def test_binary_copy_keeps_instants_text_and_microseconds(telemetry_store: TelemetryStore) -> None:
    from datetime import timezone

    point = uuid.uuid4()
    plus2 = timezone(timedelta(hours=2))
    times = [
        datetime(2027, 3, 1, 12, 0, 0, 123456, tzinfo=plus2),
        datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # before PostgreSQL's epoch
        datetime(2027, 3, 1, 12, 0, 1, tzinfo=UTC),
    ]
    values: list[Value] = [21.25, "déjà vu ✓", None]
    telemetry_store.write(
        readings=[Reading(point, t, v) for t, v in zip(times, values, strict=True)]
    )
    got = telemetry_store.range(
        point=point, start=datetime(1990, 1, 1, tzinfo=UTC), end=datetime(2030, 1, 1, tzinfo=UTC)
    )
    assert [(r.time, r.value) for r in got] == sorted(
        zip(times, values, strict=True), key=lambda x: x[0]
    )
