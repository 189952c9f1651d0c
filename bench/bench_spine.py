"""Benchmarks for the platform spine, every ratio measured in this run on this machine.

On demo buildings of ~5k, ~50k and ~500k triples (``ingest.demo_building.size_for``):

1. ingest + validation vs the brickschema path (rdflib parse + ``Graph.validate()``);
2. incremental (one VAV with five points merged) vs full validation;
3. the HTTP endpoint vs raw in-process pyoxigraph on the same queries (target >= 0.8x),
   as a client in another process sees it (and one in this process, and the HTTP floor);
4. ``rdf:type/rdfs:subClassOf*`` (as users write it, rewritten by us) vs the same query
   with the class list precomputed (target <= 2x), and vs Oxigraph walking the path;
5. Oxigraph vs rdflib on the same query (expect >= 100x).

``python -m bench.bench_spine [--sizes 5000,50000,500000] [--brickschema-max 50000]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx
import pyoxigraph as ox
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.graph.ontology import default_sources
from app.platform import Platform, build_validator, open_platform
from app.security.tokens import Scope
from app.settings import Settings
from bench.common import BackgroundServer, serve
from bench.latency_client import LatencyClient
from ingest.demo_building import generate_building, size_for

T = TypeVar("T")
GRAPH = "urn:twingraph:model:bench"
BRICK = "https://brickschema.org/schema/Brick#"

QUERIES = {
    "points with timeseries ids": """
        SELECT ?p ?id WHERE { ?p ref:hasExternalReference/ref:hasTimeseriesId ?id }""",
    "VAVs with zone temperature": """
        SELECT ?vav ?pt WHERE { ?vav a brick:VAV ; brick:hasPoint ?pt .
          ?pt a brick:Zone_Air_Temperature_Sensor }""",
    "equipment per level": """
        SELECT ?level (COUNT(?e) AS ?n) WHERE { ?e brick:hasLocation ?room .
          ?room rec:isPartOf+ ?level . ?level a rec:Level } GROUP BY ?level""",
}
#: Interleaved rounds of raw and HTTP samples per query in section 3.
ROUNDS = 3
SUBCLASS_PATH = """SELECT ?p ?id ?eq WHERE {
    ?p rdf:type/rdfs:subClassOf* brick:Temperature_Sensor .
    ?p brick:isPointOf ?eq . ?eq rdf:type/rdfs:subClassOf* brick:Equipment .
    ?p ref:hasExternalReference/ref:hasTimeseriesId ?id }"""


def timed(fn: Callable[[], T], repeat: int = 3) -> tuple[float, T]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out  # type: ignore[return-value]


def prefixes() -> str:
    from app.domain.iris import STANDARD_PREFIXES

    return "".join(f"PREFIX {k}: <{v}>\n" for k, v in STANDARD_PREFIXES.items())


def subclass_values(platform: Platform, cls: str) -> str:
    res = platform.store.query(
        f"SELECT DISTINCT ?c WHERE {{ ?c rdfs:subClassOf* <{cls}> }}".replace(
            "rdfs:", "<http://www.w3.org/2000/01/rdf-schema#"
        ).replace("subClassOf*", "subClassOf>*")
    )
    return " ".join(f"<{row['c'].value}>" for row in res)  # type: ignore[union-attr]


def run(sizes: tuple[int, ...] = (5_000, 50_000, 500_000), brickschema_max: int = 50_000) -> None:
    settings = Settings()
    validator = build_validator(default_sources(settings.qudt_dir), settings.shapes_dir)
    pre = prefixes()
    print("\n== spine benchmarks (medians; ratios measured in this run) ==")
    for target in sizes:
        floors, vavs = size_for(target)
        triples = generate_building(floors=floors, vavs_per_floor=vavs)
        turtle = ox.serialize(triples, format=ox.RdfFormat.TURTLE) or b""
        n = len(triples)
        print(f"\n-- building ~{target:,} triples ({n:,}; {floors} floors x {vavs} VAVs) --")
        with tempfile.TemporaryDirectory() as tmp:
            platform = open_platform(
                Settings(data_dir=Path(tmp)), validator=validator, telemetry=False
            )
            try:
                _bench_one(platform, validator, turtle, n, target, brickschema_max, pre)
            finally:
                platform.close()


def _bench_one(
    platform: Platform,
    validator: object,
    turtle: bytes,
    n: int,
    target: int,
    brickschema_max: int,
    pre: str,
) -> None:
    # 1. ingest + validation
    t0 = time.perf_counter()
    result = platform.models.ingest(graph=GRAPH, data=turtle, fmt=ox.RdfFormat.TURTLE)
    ours = time.perf_counter() - t0
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in result.timings.items())
    print(
        f"ingest+validate (TwinGraph): {ours:.2f}s  [{timings}]  conforms={result.report.conforms if result.report else None}"
    )
    raw_store = ox.Store()
    t_raw, _ = timed(lambda: raw_store.bulk_load(turtle, format=ox.RdfFormat.TURTLE), repeat=1)
    print(
        f"raw pyoxigraph bulk_load (no validation): {t_raw:.2f}s -> TwinGraph at {t_raw / ours:.2f}x of raw load speed"
    )
    if n <= brickschema_max:
        import brickschema

        def brick_path() -> object:
            g = brickschema.Graph(load_brick=True)
            g.parse(data=turtle.decode(), format="turtle")
            return g.validate()

        t_b, _ = timed(brick_path, repeat=1)
        print(f"brickschema parse+validate: {t_b:.2f}s -> TwinGraph {t_b / ours:.1f}x faster")
    else:
        print(f"brickschema parse+validate: skipped above {brickschema_max:,} triples (minutes)")

    # 2. incremental vs full validation
    from bench.bench_validation import vav_delta

    # One new VAV with five points, fed by an AHU of the demo building.
    vav_only = vav_delta(1, base="urn:twingraph:demo:", ahu_local="bldg/ahu-1")
    model = [q.triple for q in ox.parse(turtle, format=ox.RdfFormat.TURTLE)]
    t_full, _ = timed(lambda: validator.validate(model + vav_only), repeat=1)  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    merged = platform.models.ingest_triples(graph=GRAPH, triples=vav_only, mode="merge")
    t_inc = time.perf_counter() - t0
    t_delta = merged.timings["validate"]
    print(
        f"full validation of model + VAV: {t_full:.2f}s; delta validation of the merged VAV ({len(vav_only)} triples): {t_delta:.3f}s -> {t_full / t_delta:.0f}x faster (whole merge incl. commit {t_inc:.3f}s)"
    )

    # 3. endpoint vs raw pyoxigraph
    _bench_endpoint(platform, pre)

    # 4. subclass path (rewritten) vs precomputed class list vs Oxigraph's own path walk
    values_temp = subclass_values(platform, BRICK + "Temperature_Sensor")
    values_equip = subclass_values(platform, BRICK + "Equipment")
    precomputed = f"""SELECT ?p ?id ?eq WHERE {{
        VALUES ?tc {{ {values_temp} }} VALUES ?ec {{ {values_equip} }}
        ?p rdf:type ?tc . ?p brick:isPointOf ?eq . ?eq rdf:type ?ec .
        ?p ref:hasExternalReference/ref:hasTimeseriesId ?id }}"""
    t_rw, a = timed(lambda: platform.sparql.run(SUBCLASS_PATH, accept="text/csv"), repeat=3)
    t_pre, b = timed(
        lambda: platform.sparql.run(precomputed, accept="text/csv", rewrite=False), repeat=3
    )
    t_walk, c = timed(
        lambda: platform.sparql.run(SUBCLASS_PATH, accept="text/csv", rewrite=False), repeat=1
    )
    rows = a.body.count(b"\n") - 1
    print(
        f"subclass query ({rows:,} rows): rewritten {t_rw * 1000:.0f} ms, precomputed classes {t_pre * 1000:.0f} ms -> {t_rw / t_pre:.2f}x (target <= 2x); Oxigraph path walk {t_walk * 1000:.0f} ms"
    )

    # 5. vs rdflib on the subclass query analysts write (rdflib only up to 5k: minutes above)
    if target <= 5_000:
        import rdflib

        g = rdflib.Graph()
        g.parse(data=turtle.decode(), format="turtle")
        for s in platform.sources:
            if s.name == "brick":
                g.parse(str(s.path), format="turtle")
        for name, text in (
            ("VAVs with zone temperature", QUERIES["VAVs with zone temperature"]),
            ("subclass query", SUBCLASS_PATH),
        ):
            q = pre + text
            t_rdf, _ = timed(lambda q=q: list(g.query(q)), repeat=1)
            t_ox, _ = timed(lambda text=text: platform.sparql.run(text), repeat=3)
            print(
                f"vs rdflib [{name}]: rdflib {t_rdf * 1000:.0f} ms, "
                f"TwinGraph {t_ox * 1000:.1f} ms -> {t_rdf / t_ox:.0f}x"
            )


def samples(fn: Callable[[], object], n: int) -> list[float]:
    """Seconds of ``n`` calls of ``fn``, one each."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _bench_endpoint(platform: Platform, pre: str) -> None:
    """POST /sparql vs the same query on the raw store: same data, same run, interleaved
    rounds, client-observed latency. The server is uvicorn in this process (the embedded
    store admits one process); the headline client runs in another process, as an
    analyst's does. A client in this process (it shares the GIL with the server) and a
    bare Starlette endpoint on the same uvicorn (the HTTP stack's own floor) are shown too.
    """
    token = platform.tokens.create(Scope.READ, label="bench")
    raw = platform.store.raw if hasattr(platform.store, "raw") else None
    assert raw is not None
    url, server = serve(platform)
    floor = BackgroundServer(_bare_sparql_app()).start()
    headers = {
        "Authorization": f"Bearer {token}",
        "Accept": "application/sparql-results+json",
        "Content-Type": "application/sparql-query",
    }
    print(
        "endpoint vs raw (target >= 0.8x): medians of client-observed latency, httpx over "
        "127.0.0.1 to uvicorn in this process; 'other process' = the client runs in its own "
        "process, 'same process' = in this one"
    )
    try:
        with LatencyClient(token) as remote, httpx.Client(headers=headers) as local:

            def local_post(target: str, q: str) -> bytes:
                r = local.post(target, content=q)
                r.raise_for_status()
                return r.content

            remote_floor, _ = remote.post(f"{floor.url}/sparql", "ASK {}", 50)
            local_post(f"{floor.url}/sparql", "ASK {}")
            local_floor = samples(lambda: local_post(f"{floor.url}/sparql", "ASK {}"), 50)
            print(
                "HTTP floor (a bare Starlette endpoint on the same uvicorn, fixed ASK answer): "
                f"{statistics.median(remote_floor) * 1000:.2f} ms from another process, "
                f"{statistics.median(local_floor) * 1000:.2f} ms from the same process"
            )
            for name, q in QUERIES.items():

                def raw_q(q: str = q) -> object:
                    r = raw.query(pre + q, use_default_graph_as_union=True)
                    return r.serialize(format=ox.QueryResultsFormat.JSON)

                def http_q(q: str = q) -> bytes:
                    return local_post(f"{url}/sparql", q)

                t_first, _ = timed(raw_q, repeat=1)  # also the warm-up
                http_q()
                n = max(2, min(20, int(0.2 / max(t_first, 1e-6))))
                raw_s: list[float] = []
                remote_s: list[float] = []
                local_s: list[float] = []
                size = 0
                for _ in range(ROUNDS):
                    raw_s += samples(raw_q, n)
                    got, size = remote.post(f"{url}/sparql", q, n)
                    remote_s += got
                    local_s += samples(http_q, n)
                t_r, t_h, t_l = (statistics.median(x) for x in (raw_s, remote_s, local_s))
                print(
                    f"endpoint vs raw [{name}]: raw {t_r * 1000:.1f} ms | HTTP, other process "
                    f"{t_h * 1000:.1f} ms -> {t_r / t_h:.2f}x | same process {t_l * 1000:.1f} ms "
                    f"-> {t_r / t_l:.2f}x ({size:,} bytes; {len(raw_s)} requests each)"
                )
    finally:
        floor.stop()
        server.stop()


def _bare_sparql_app() -> Starlette:
    """An endpoint that reads the request and answers a fixed ASK result: what uvicorn,
    Starlette and the client cost with nothing of ours in the way."""

    async def answer(request: Request) -> Response:
        await request.body()
        return Response(b'{"head":{},"boolean":true}', media_type="application/sparql-results+json")

    return Starlette(routes=[Route("/sparql", answer, methods=["POST"])])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="5000,50000,500000")
    ap.add_argument("--brickschema-max", type=int, default=50_000)
    args = ap.parse_args()
    run(tuple(int(s) for s in args.sizes.split(",")), args.brickschema_max)


if __name__ == "__main__":
    main()
