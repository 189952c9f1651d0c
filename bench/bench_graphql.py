"""P4: 1,000 points with their latest value and 1 h average, through GraphQL over HTTP, vs
a hand-written script that asks Oxigraph once (SPARQL) and PostgreSQL once (SQL).

Same run, same data: the platform (embedded Oxigraph + a local PostgreSQL) holds a demo
building of ~1,100 points and an hour of one-minute readings for 1,000 of them; uvicorn
serves it on 127.0.0.1. Target: GraphQL <= 2x the script. The response's
``extensions.roundTrips`` shows the SPARQL and SQL round trips one request made.

``python -m bench.bench_graphql [--repeat 5]``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from app.domain.iris import BRICK, REF
from app.domain.telemetry import Reading
from app.platform import Platform, open_platform
from app.points import timeseries_uuid
from app.security.tokens import Scope
from app.settings import Settings
from bench.common import serve
from ingest.demo_building import generate_building

POINTS = 1000
T0 = datetime(2031, 6, 2, 12, tzinfo=UTC)
T1 = T0 + timedelta(hours=1)

QUERY = """query($start: DateTime!, $end: DateTime!, $first: Int!) {
  points(first: $first) {
    nodes {
      id
      latest { time value }
      avg: readings(start: $start, end: $end, bucket: "1h", agg: AVG) { value }
    }
  }
}"""

SPARQL = f"""SELECT ?p ?id WHERE {{
  ?p a <{BRICK}Point> ; <{REF}hasExternalReference>/<{REF}hasTimeseriesId> ?id
}} ORDER BY ?p LIMIT {POINTS}"""

SQL = """SELECT l.point, l.time, l.num, a.avg
FROM latest l
LEFT JOIN LATERAL (
    SELECT avg(r.num) AS avg FROM readings r
    WHERE r.point = l.point AND r.time >= %(start)s AND r.time < %(end)s
) a ON true
WHERE l.point = ANY(%(points)s)"""


def _median(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up: caches, connections, query plans
    samples = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def _script(platform: Platform) -> dict[str, tuple[Any, Any, Any]]:
    """What a client would write by hand against the two engines."""
    rows = platform.store.query(SPARQL)
    ids = {timeseries_uuid(r["id"].value): r["p"].value for r in rows}  # type: ignore[union-attr]
    assert platform.telemetry is not None
    pool = platform.telemetry._pool  # noqa: SLF001 - the baseline uses the same server
    with pool.connection() as conn:
        found = conn.execute(SQL, {"start": T0, "end": T1, "points": list(ids)}).fetchall()
    return {ids[p]: (t, n, avg) for p, t, n, avg in found}


def run(repeat: int = 5) -> None:
    root = Path(tempfile.mkdtemp(prefix="twingraph-bench-graphql-"))
    root.chmod(0o755)  # as root, the local PostgreSQL runs as `postgres` and must reach it
    platform = open_platform(Settings(data_dir=root))
    try:
        platform.models.ingest_triples(
            graph="urn:twingraph:model:bench",
            triples=generate_building(floors=10, vavs_per_floor=17),
        )
        chosen = _script(platform)  # nothing yet: only to learn which points are selected
        rows = platform.store.query(SPARQL)
        uuids = [timeseries_uuid(r["id"].value) for r in rows]  # type: ignore[union-attr]
        assert len(uuids) == POINTS and not chosen
        assert platform.telemetry is not None
        platform.telemetry.write(
            readings=[
                Reading(p, T0 + timedelta(minutes=m), 20.0 + (i % 50) / 10 + m / 100)
                for i, p in enumerate(uuids)
                for m in range(60)
            ]
        )
        token = platform.tokens.create(Scope.READ, label="bench")
        url, srv = serve(platform)
        http = httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=120)
        body = {
            "query": QUERY,
            "variables": {"start": T0.isoformat(), "end": T1.isoformat(), "first": POINTS},
        }
        answers: list[dict[str, Any]] = []

        def graphql() -> None:
            resp = http.post(f"{url}/graphql", json=body)
            resp.raise_for_status()
            answers.append(resp.json())

        try:
            gql_s = _median(graphql, repeat)
            script_s = _median(lambda: _script(platform), repeat)
        finally:
            http.close()
            srv.stop()  # before the platform closes: its sweepers and pool serve the app
        last = answers[-1]
        assert "errors" not in last, last["errors"]
        nodes = last["data"]["points"]["nodes"]
        script = _script(platform)
        assert len(nodes) == len(script) == POINTS
        for node in nodes[:50]:
            _, latest, avg = script[node["id"]]
            assert node["latest"]["value"] == latest
            assert abs(node["avg"][0]["value"] - avg) < 1e-9
        trips = last["extensions"]["roundTrips"]
        print(f"\n== P4 GraphQL join: {POINTS} points, latest + 1 h average ==")
        print(f"hand-written script (1 SPARQL + 1 SQL, in process): {script_s * 1000:8.1f} ms")
        print(
            f"GraphQL over HTTP:                                  {gql_s * 1000:8.1f} ms  -> "
            f"{gql_s / script_s:.2f}x of the script (target <= 2x)"
        )
        print(f"round trips per GraphQL request: SPARQL {trips['sparql']}, SQL {trips['sql']}")
    finally:
        platform.close()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=5)
    run(ap.parse_args().repeat)


if __name__ == "__main__":
    main()
