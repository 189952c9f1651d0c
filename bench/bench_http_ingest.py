"""HTTP batch ingest (POST /telemetry, JSON) vs raw psycopg binary COPY into the same table.

Same run, same rows: the platform (embedded Oxigraph + a local PostgreSQL) serves a demo
building over uvicorn on 127.0.0.1; a client posts 20k-reading batches for its points;
then the same rows go through raw binary COPY into a table of identical shape. Target:
HTTP >= 0.5x raw COPY. ``python -m bench.bench_http_ingest [--rows N] [--batch N]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from app.platform import open_platform
from app.security.tokens import Scope
from app.settings import Settings
from app.telemetry.readings import encode
from bench.common import raw_copy_seconds, serve
from ingest.demo_building import generate_building, size_for


def run(rows: int = 1_000_000, batch: int = 20_000, clients: tuple[int, ...] = (1,)) -> None:
    root = Path(tempfile.mkdtemp(prefix="twingraph-bench-http-"))
    root.chmod(0o755)  # as root, the local PostgreSQL runs as `postgres` and must reach it
    platform = open_platform(Settings(data_dir=root))
    try:
        floors, vavs = size_for(50_000)
        platform.models.ingest_triples(
            graph="urn:twingraph:model:bench",
            triples=generate_building(floors=floors, vavs_per_floor=vavs),
        )
        points = [r.uuid for r in platform.points.all() if r.timeseries_id][:1000]
        token = platform.tokens.create(Scope.WRITE, label="bench")
        t0 = datetime(2030, 1, 1, tzinfo=UTC)
        bodies = []
        flat = []
        for b in range(0, rows, batch):
            items = []
            for i in range(b, min(b + batch, rows)):
                p = points[i % len(points)]
                when = t0 + timedelta(seconds=i // len(points) * 60)
                items.append({"point": str(p), "time": when.isoformat(), "value": (i % 400) / 10})
                flat.append((p, when, (i % 400) / 10))
            bodies.append(json.dumps({"readings": items}).encode())

        url, srv = serve(platform)
        port = int(url.rsplit(":", 1)[1])
        http_s: dict[int, float] = {}
        try:
            for n_clients in clients:
                # Each round writes the same rows again (later in time, so they are new rows).
                shift = timedelta(days=365 * (n_clients))
                round_bodies = [
                    body.replace(b'"2030-', f'"{2030 + shift.days // 365}-'.encode())
                    for body in bodies
                ]
                http_s[n_clients] = _post_all(port, token, round_bodies, n_clients)
        finally:
            srv.should_exit = True

        assert platform.telemetry is not None
        pool = platform.telemetry._pool  # noqa: SLF001 - the benchmark compares against the same server
        encoded = [(p, w, *encode(v)) for p, w, v in flat]
        raw_s = raw_copy_seconds(pool, encoded, batch)
        print(
            f"\n== HTTP ingest: {rows:,} readings in batches of {batch:,}, {len(points)} points =="
        )
        print(f"raw binary COPY:     {rows / raw_s:>10,.0f} rows/s")
        for n_clients, secs in http_s.items():
            print(
                f"POST /telemetry, {n_clients} client(s): {rows / secs:>10,.0f} rows/s  -> "
                f"{raw_s / secs:.2f}x of raw COPY (target >= 0.5x)"
            )
    finally:
        platform.close()
        shutil.rmtree(root, ignore_errors=True)


def _post_all(port: int, token: str, bodies: list[bytes], n_clients: int) -> float:
    """Seconds to POST every body, spread over ``n_clients`` concurrent connections."""
    from concurrent.futures import ThreadPoolExecutor

    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    url = f"http://127.0.0.1:{port}/telemetry"

    def worker(part: list[bytes]) -> None:
        with httpx.Client(headers=headers, timeout=120) as http:
            for body in part:
                http.post(url, content=body).raise_for_status()

    parts = [bodies[i::n_clients] for i in range(n_clients)]
    t = time.perf_counter()
    with ThreadPoolExecutor(n_clients) as pool:
        list(pool.map(worker, parts))
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument("--clients", default="1", help="concurrent client connections to try")
    a = ap.parse_args()
    run(a.rows, a.batch, tuple(int(c) for c in a.clients.split(",")))


if __name__ == "__main__":
    main()
