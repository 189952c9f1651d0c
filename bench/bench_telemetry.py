"""Telemetry store benchmarks, every ratio measured in this run on this machine.

(a) ``TelemetryStore.write`` (binary COPY to staging, dedup insert, latest upsert, commit
    per batch) vs raw psycopg binary COPY of the same rows into an identical table with
    the same primary key, one commit per batch. The HTTP ingest target is >= 0.5x raw COPY.
(b) Bucketed range queries over ``--query-rows`` readings of 1,000 points (one a minute
    per point), measured at 1M and then at the full size to show how latency grows: raw
    aggregation, and (plain PostgreSQL) through the platform's rollups after a refresh.

Runs on its own managed PostgreSQL in a temp dir (or ``TWINGRAPH_DATABASE_URL``, whose
``readings`` tables it empties: never point it at real data).

``python -m bench.bench_telemetry [--write-rows 1000000] [--batch 20000] [--query-rows 10000000]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from psycopg_pool import ConnectionPool

from app.domain.telemetry import Reading
from app.telemetry.db import connect_pool
from app.telemetry.pg_server import LocalPostgres
from app.telemetry.readings import TelemetryStore, encode, open_store
from bench.common import raw_copy_seconds

T0 = datetime(2026, 1, 5, tzinfo=UTC)
POINTS = 1000


def _points(n: int) -> list[uuid.UUID]:
    return [uuid.UUID(int=(0x7467 << 112) + i) for i in range(n)]


def _readings(rows: int, points: list[uuid.UUID]) -> list[Reading]:
    """Round-robin over points, one minute apart per point; a few booleans and strings."""
    out = []
    for i in range(rows):
        p = points[i % len(points)]
        minute = i // len(points)
        value: float | bool | str = 20.0 + (i % 97) * 0.1
        if i % 50 == 0:
            value = i % 100 == 0
        elif i % 71 == 0:
            value = "auto"
        out.append(Reading(p, T0 + timedelta(minutes=minute), value))
    return out


def _timed(fn: Callable[[], object], repeat: int = 5) -> float:
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def bench_write(pool: ConnectionPool, store: TelemetryStore, rows: int, batch: int) -> None:
    points = _points(POINTS)
    readings = _readings(rows, points)
    encoded = [(r.point, r.time, *encode(r.value)) for r in readings]
    with pool.connection() as conn:
        conn.execute("TRUNCATE readings, latest")
    raw_s = raw_copy_seconds(pool, encoded, batch)

    t = time.perf_counter()
    for i in range(0, rows, batch):
        store.write(readings=readings[i : i + batch])
    store_s = time.perf_counter() - t

    t = time.perf_counter()
    again = store.write(readings=readings[:batch])
    resend_s = time.perf_counter() - t
    assert again.inserted == 0 and again.duplicates == min(batch, rows)
    assert store.count() == rows

    raw_rate, store_rate = rows / raw_s, rows / store_s
    print(f"(a) write {rows:,} rows in batches of {batch:,} ({POINTS} points)")
    print(f"    raw binary COPY        {raw_rate:>10,.0f} rows/s")
    print(
        f"    TelemetryStore.write   {store_rate:>10,.0f} rows/s   ratio {store_rate / raw_rate:.2f}x"
    )
    print(f"    re-sent batch (all duplicates): {batch / resend_s:,.0f} rows/s")


def _fill(pool: ConnectionPool, upto: int) -> None:
    """Grow ``readings`` to ``upto`` rows server-side (same shape as ``_readings``)."""
    with pool.connection() as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
        have = int(row[0]) if row else 0
        per_point_from, per_point_to = have // POINTS, upto // POINTS
        conn.execute(
            """
            INSERT INTO readings (point, time, num, txt, kind)
            SELECT ('74670000-0000-0000-0000-' || lpad(to_hex(p), 12, '0'))::uuid,
                   %(t0)s + make_interval(mins => m),
                   20 + (m %% 97) * 0.1, NULL, 1
            FROM generate_series(0, %(points)s - 1) p,
                 generate_series(%(m0)s, %(m1)s - 1) m
            ORDER BY 1, 2
            ON CONFLICT DO NOTHING
            """,
            {"t0": T0, "points": POINTS, "m0": per_point_from, "m1": per_point_to},
        )
        conn.execute("ANALYZE readings")


def _cases(
    store: TelemetryStore, points: list[uuid.UUID], day: datetime, end: datetime
) -> dict[str, Callable[[], object]]:
    return {
        "1 point, whole span, 1 h avg": lambda: store.range(
            point=points[1], start=T0, end=end, bucket=timedelta(hours=1), agg="avg"
        ),
        "1 point, last day raw": lambda: store.range(point=points[2], start=day, end=end),
        "1000 points, last day, 1 h avg": lambda: store.range_many(
            points=points, start=day, end=end, bucket=timedelta(hours=1), agg="avg"
        ),
        "1000 points, last day, 1 h last": lambda: store.range_many(
            points=points, start=day, end=end, bucket=timedelta(hours=1), agg="last"
        ),
        "1000 points, whole span, 1 d max": lambda: store.range_many(
            points=points, start=T0, end=end, bucket=timedelta(days=1), agg="max"
        ),
        "1000 points latest": lambda: store.latest(points=points),
    }


def bench_queries(pool: ConnectionPool, store: TelemetryStore, sizes: list[int]) -> None:
    points = _points(POINTS)
    rollups = store.rollups
    raw = TelemetryStore(pool, store.features)  # the same data, aggregated raw
    print(f"(b) bucketed queries, {POINTS} points, one reading a minute each (median of 5)")
    if rollups is not None:
        print(f"      {'':<36} {'raw':>9}    {'rollups':>9}")
    with pool.connection() as conn:
        conn.execute("TRUNCATE readings, latest")
    for size in sizes:
        t = time.perf_counter()
        _fill(pool, size)
        fill_s = time.perf_counter() - t
        span = timedelta(minutes=size // POINTS)
        end = T0 + span
        day = max(T0, end - timedelta(days=1))
        refreshed = ""
        if rollups is not None:
            rollups.invalidate(T0, end)  # _fill bypasses the store's write hook
            report = rollups.refresh()
            refreshed = f"; rollups refreshed in {report.seconds:.1f} s"
        print(
            f"    {size:,} readings ({span.total_seconds() / 86400:.1f} days; "
            f"loaded in {fill_s:.1f} s{refreshed})"
        )
        raw_cases = _cases(raw, points, day, end)
        cases = _cases(store, points, day, end)
        for name, fn in raw_cases.items():
            fn()  # warm
            line = f"      {name:<36} {_timed(fn) * 1000:>9.1f} ms"
            if rollups is not None:
                cases[name]()
                line += f" {_timed(cases[name]) * 1000:>9.1f} ms"
            print(line)


def run(*, write_rows: int = 1_000_000, batch: int = 20_000, query_rows: int = 10_000_000) -> None:
    dsn = os.environ.get("TWINGRAPH_DATABASE_URL")
    root: Path | None = None
    server: LocalPostgres | None = None
    if dsn is None:
        root = Path(tempfile.mkdtemp(prefix="twingraph-bench-pg-"))
        server = LocalPostgres(root)
        dsn = server.start()
    pool = connect_pool(dsn, max_size=2)
    try:
        store = open_store(pool)
        print(
            f"PostgreSQL {store.features.server_version}; TimescaleDB: {store.features.hypertables}"
        )
        bench_write(pool, store, write_rows, batch)
        sizes = sorted({min(1_000_000, query_rows), query_rows})
        bench_queries(pool, store, sizes)
    finally:
        pool.close()
        if server is not None and root is not None:
            server.stop()
            shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write-rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--query-rows", type=int, default=10_000_000)
    args = parser.parse_args()
    run(write_rows=args.write_rows, batch=args.batch, query_rows=args.query_rows)


if __name__ == "__main__":
    main()
