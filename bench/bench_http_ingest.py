"""HTTP batch ingest (POST /telemetry, JSON) vs raw psycopg binary COPY into the same table.

Same run, same rows: the platform (embedded Oxigraph + a local PostgreSQL) serves a demo
building over uvicorn on 127.0.0.1; a client posts 20k-reading batches for its points;
then the same rows go through raw binary COPY into a table of identical shape. Measured
for one connection and for two concurrent ones (HTTP clients vs COPY connections).
Target: HTTP >= 0.5x raw COPY.
``python -m bench.bench_http_ingest [--rows N] [--batch N] [--clients 1,2]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from app.platform import open_platform
from app.security.tokens import Scope
from app.settings import Settings
from app.telemetry.readings import encode
from bench.common import raw_copy_seconds, serve
from ingest.demo_building import generate_building, size_for


def run(
    rows: int = 1_000_000,
    batch: int = 20_000,
    clients: Sequence[int] = (1, 2),
    rounds: int = 3,
) -> None:
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

        assert platform.telemetry is not None
        pool = platform.telemetry._pool  # noqa: SLF001 - the benchmark compares against the same server
        encoded = [(p, w, *encode(v)) for p, w, v in flat]
        url, srv = serve(platform)
        port = int(url.rsplit(":", 1)[1])
        print(
            f"\n== HTTP ingest: {rows:,} readings in batches of {batch:,}, {len(points)} points =="
        )
        try:
            for n_clients in clients:
                ratios: list[float] = []
                # Interleaved rounds, each into empty tables, so machine noise hits both
                # sides; n concurrent HTTP clients against n concurrent COPY connections.
                for n in range(rounds):
                    with pool.connection() as conn:
                        conn.execute("TRUNCATE readings, latest")
                    http_s = _post_all(port, token, bodies, n_clients)
                    raw_s = raw_copy_seconds(pool, encoded, batch, n_clients)
                    ratios.append(raw_s / http_s)
                    print(
                        f"{n_clients} connection(s), round {n + 1}: raw binary COPY "
                        f"{rows / raw_s:>9,.0f} rows/s | POST /telemetry {rows / http_s:>9,.0f} "
                        f"rows/s | {raw_s / http_s:.2f}x"
                    )
                print(
                    f"{n_clients} connection(s): median ratio {statistics.median(ratios):.2f}x of "
                    f"raw COPY (target >= 0.5x; rounds {' '.join(f'{r:.2f}' for r in ratios)})"
                )
        finally:
            srv.stop()
    finally:
        platform.close()
        shutil.rmtree(root, ignore_errors=True)


def _post_all(port: int, token: str, bodies: list[bytes], n_clients: int) -> float:
    """Seconds to POST every body from a separate client process (as a gateway would be;
    a client in the server's own process would compete with it for the GIL), spread over
    ``n_clients`` concurrent connections."""
    with tempfile.TemporaryDirectory() as tmp:
        for n, body in enumerate(bodies):
            (Path(tmp) / f"{n:06d}.json").write_bytes(body)
        out = subprocess.run(
            [
                sys.executable,
                "-c",
                _CLIENT,
                tmp,
                f"http://127.0.0.1:{port}/telemetry",
                token,
                str(n_clients),
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=3600,
        )
    return float(out.stdout.strip())


_CLIENT = """
import sys, time, pathlib, httpx
from concurrent.futures import ThreadPoolExecutor
folder, url, token, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
bodies = [p.read_bytes() for p in sorted(pathlib.Path(folder).iterdir())]
headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
def worker(part):
    with httpx.Client(headers=headers, timeout=120) as http:
        for body in part:
            http.post(url, content=body).raise_for_status()
t = time.perf_counter()
with ThreadPoolExecutor(n) as pool:
    list(pool.map(worker, [bodies[i::n] for i in range(n)]))
print(time.perf_counter() - t)
"""


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=20_000)
    ap.add_argument(
        "--clients", default="1,2", help="concurrent connections to measure, e.g. 1,2,4"
    )
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    run(a.rows, a.batch, tuple(int(c) for c in a.clients.split(",")), a.rounds)


if __name__ == "__main__":
    main()
