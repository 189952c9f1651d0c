"""The HTTP surfaces over a real socket, in both store modes: SPARQL, GSP, named queries."""

from __future__ import annotations

import csv
import io
import json

import httpx
import pytest
from pyoxigraph import RdfFormat, parse

from tests.conftest import Server
from tests.factories import broken_unit_model, vav_model

AHU_QUERY = """PREFIX brick: <https://brickschema.org/schema/Brick#>
SELECT ?ahu WHERE { ?ahu rdf:type/rdfs:subClassOf* brick:Air_Handling_Unit } ORDER BY ?ahu"""


def test_sparql_get_lists_the_demo_ahus(server: Server) -> None:
    r = httpx.get(f"{server.url}/sparql", params={"query": AHU_QUERY}, headers=server.auth("read"))
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/sparql-results+json")
    ahus = [b["ahu"]["value"] for b in r.json()["results"]["bindings"]]
    assert len(ahus) >= 1 and all("ahu" in a for a in ahus)
    assert r.headers["x-twingraph-rewritten-paths"] == "1"


@pytest.mark.parametrize(
    ("accept", "media", "check"),
    [
        ("application/sparql-results+xml", "application/sparql-results+xml", b"<sparql"),
        ("text/csv", "text/csv", b"ahu\r\n"),
        ("text/tab-separated-values", "text/tab-separated-values", b"?ahu\n"),
    ],
)
def test_select_result_formats(server: Server, accept: str, media: str, check: bytes) -> None:
    r = httpx.post(
        f"{server.url}/sparql",
        content=AHU_QUERY,
        headers={
            **server.auth("read"),
            "Content-Type": "application/sparql-query",
            "Accept": accept,
        },
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith(media)
    assert r.content.startswith(check) or check in r.content


@pytest.mark.parametrize(
    ("accept", "fmt"),
    [
        ("text/turtle", RdfFormat.TURTLE),
        ("application/n-triples", RdfFormat.N_TRIPLES),
        ("application/ld+json", RdfFormat.JSON_LD),
    ],
)
def test_construct_formats(server: Server, accept: str, fmt: RdfFormat) -> None:
    q = "CONSTRUCT { ?a a brick:AHU } WHERE { ?a a brick:AHU }"
    r = httpx.post(
        f"{server.url}/sparql", data={"query": q}, headers={**server.auth("read"), "Accept": accept}
    )
    assert r.status_code == 200, r.text
    triples = list(parse(r.content, format=fmt))
    assert len(triples) >= 1


def test_syntax_error_is_problem_json_with_position(server: Server) -> None:
    r = httpx.get(
        f"{server.url}/sparql",
        params={"query": "SELECT * WHERE {\n ?s ?p"},
        headers=server.auth("read"),
    )
    assert r.status_code == 400
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "sparql_syntax_error" and body["line"] == 2
    assert "Traceback" not in r.text


def test_reads_need_a_token_unless_anonymous(server: Server) -> None:
    r = httpx.get(f"{server.url}/sparql", params={"query": "ASK {}"})
    assert r.status_code == 401 and r.json()["code"] == "token_required"
    r = httpx.get(
        f"{server.url}/sparql",
        params={"query": "ASK {}"},
        headers={"Authorization": "Bearer tg_x_y"},
    )
    assert r.status_code == 401 and r.json()["code"] == "invalid_token"


def test_update_needs_write_scope(server: Server, graph_iri: str) -> None:
    update = f'INSERT DATA {{ GRAPH <{graph_iri}> {{ <urn:ex:n> rdfs:label "n" }} }}'
    update = "PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> " + update
    r = httpx.post(f"{server.url}/sparql", data={"update": update}, headers=server.auth("read"))
    assert r.status_code == 403 and r.json()["code"] == "insufficient_scope"
    r = httpx.post(
        f"{server.url}/sparql",
        content=update,
        headers={**server.auth("write"), "Content-Type": "application/sparql-update"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["changed"][graph_iri] == {"added": 1, "removed": 0}
    r = httpx.get(f"{server.url}/sparql", params={"update": update}, headers=server.auth("write"))
    assert r.status_code == 400


def test_graph_store_protocol_round_trip(server: Server, graph_iri: str) -> None:
    turtle = {"Content-Type": "text/turtle"}
    r = httpx.put(
        f"{server.url}/rdf-graphs",
        params={"graph": graph_iri},
        content=vav_model(),
        headers={**server.auth("write"), **turtle},
    )
    assert r.status_code == 201, r.text
    assert r.json()["validation"]["conforms"] is True
    r = httpx.post(
        f"{server.url}/rdf-graphs",
        params={"graph": graph_iri},
        content=vav_model("v2", ts="3f2a6c3e-0000-4000-8000-0000000000f2"),
        headers={**server.auth("write"), **turtle},
    )
    assert r.status_code == 200, r.text
    r = httpx.get(
        f"{server.url}/rdf-graphs",
        params={"graph": graph_iri},
        headers={**server.auth("read"), "Accept": "application/n-triples"},
    )
    assert r.status_code == 200
    assert b"urn:ex:vav1-zat" in r.content and b"urn:ex:v2-zat" in r.content
    # A violating PUT is refused with the report and leaves the graph as it was.
    r = httpx.put(
        f"{server.url}/rdf-graphs",
        params={"graph": graph_iri},
        content=broken_unit_model(),
        headers={**server.auth("write"), **turtle},
    )
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "validation_failed"
    assert any(x["focus_node"] == "urn:ex:bad-zat" for x in body["report"]["results"])
    again = httpx.get(
        f"{server.url}/rdf-graphs",
        params={"graph": graph_iri},
        headers={**server.auth("read"), "Accept": "application/n-triples"},
    )
    assert b"urn:ex:bad-zat" not in again.content and b"urn:ex:vav1-zat" in again.content
    r = httpx.delete(
        f"{server.url}/rdf-graphs", params={"graph": graph_iri}, headers=server.auth("write")
    )
    assert r.status_code == 204
    r = httpx.get(
        f"{server.url}/rdf-graphs", params={"graph": graph_iri}, headers=server.auth("read")
    )
    assert r.status_code == 404 and r.json()["code"] == "graph_not_found"


def test_malformed_upload_is_400_with_line(server: Server, graph_iri: str) -> None:
    r = httpx.put(
        f"{server.url}/rdf-graphs",
        params={"graph": graph_iri},
        content="@prefix ex: <urn:ex:> .\nex:a ex:b .\n",
        headers={**server.auth("write"), "Content-Type": "text/turtle"},
    )
    assert r.status_code == 400
    assert r.json()["code"] == "parse_error" and r.json()["line"] == 2


def test_named_queries_list_and_run(server: Server) -> None:
    r = httpx.get(f"{server.url}/queries", headers=server.auth("read"))
    names = {q["name"] for q in r.json()["queries"]}
    assert {"points/by_class", "ahus/list"} <= names
    r = httpx.get(
        f"{server.url}/queries/points/by_class",
        params={"class": "https://brickschema.org/schema/Brick#Temperature_Sensor"},
        headers={**server.auth("read"), "Accept": "text/csv"},
    )
    assert r.status_code == 200, r.text
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) > 10
    r = httpx.get(f"{server.url}/queries/points/by_class", headers=server.auth("read"))
    assert r.status_code == 400 and "class" in r.json()["detail"]
    r = httpx.get(f"{server.url}/queries/nope", headers=server.auth("read"))
    assert r.status_code == 404


def test_sparqlwrapper_queries_the_running_server(server: Server) -> None:
    from SPARQLWrapper import JSON, SPARQLWrapper

    sw = SPARQLWrapper(f"{server.url}/sparql")
    sw.addCustomHttpHeader("Authorization", f"Bearer {server.read}")
    sw.setQuery(AHU_QUERY)
    sw.setReturnFormat(JSON)
    data = sw.query().convert()
    assert isinstance(data, dict)
    assert len(data["results"]["bindings"]) >= 1


def test_rdflib_sparqlstore_queries_the_running_server(server: Server) -> None:
    from rdflib import Graph
    from rdflib.plugins.stores.sparqlstore import SPARQLStore

    store = SPARQLStore(f"{server.url}/sparql", headers={"Authorization": f"Bearer {server.read}"})
    g = Graph(store=store)
    rows = list(g.query(AHU_QUERY))
    assert len(rows) >= 1
    assert all("ahu" in str(r[0]) for r in rows)


def test_rewritten_subclass_query_matches_the_path_form(server: Server) -> None:
    q = """SELECT DISTINCT ?p ?c WHERE { ?p rdf:type/rdfs:subClassOf* brick:Point .
           ?p a ?c FILTER(STRSTARTS(STR(?c), STR(brick:))) } ORDER BY ?p ?c"""
    fast = server.platform.sparql.run(q, accept="text/csv")
    slow = server.platform.sparql.run(q, accept="text/csv", rewrite=False)
    assert fast.rewritten_paths == 1 and slow.rewritten_paths == 0
    assert fast.body == slow.body and fast.body.count(b"\n") > 20


def test_health_reports_store_mode(server: Server) -> None:
    body = httpx.get(f"{server.url}/health").json()
    assert body["status"] == "ok"
    assert body["graph_store"]["mode"] in ("embedded", "remote")
    assert any(o["name"] == "qudt-units" for o in body["ontologies"])


def test_graphs_listing(server: Server) -> None:
    body = httpx.get(
        f"{server.url}/graphs", params={"kind": "model"}, headers=server.auth("read")
    ).json()
    demo = [g for g in body["graphs"] if g["iri"] == "urn:twingraph:model:fixture-demo"]
    assert demo and demo[0]["triples"] > 1000


def test_result_size_and_time_limits(server: Server) -> None:
    from app.errors import PayloadTooLargeError, QueryTimeoutError
    from app.graph.sparql import QueryLimits, SparqlService

    store = server.platform.store
    small = SparqlService(store=store, limits=QueryLimits(max_result_bytes=2000, timeout_s=5))
    slow = SparqlService(store=store, limits=QueryLimits(max_result_bytes=1 << 40, timeout_s=0.5))
    try:
        with pytest.raises(PayloadTooLargeError):
            small.run("SELECT * WHERE { ?s ?p ?o }")
        # A streaming cross product: stopped at the limit, its worker freed.
        with pytest.raises(QueryTimeoutError):
            slow.run("SELECT * WHERE { ?a ?b ?c . ?d ?e ?f }")
    finally:
        small.close()
        slow.close()
    assert json.loads(server.platform.sparql.run("ASK { ?s ?p ?o }").body)["boolean"] is True


def test_uploads_and_queries_over_their_limits_are_413(server: Server, graph_iri: str) -> None:
    settings = server.platform.settings
    old = settings.max_upload_bytes
    settings.max_upload_bytes = 200
    try:
        r = httpx.put(
            f"{server.url}/rdf-graphs",
            params={"graph": graph_iri},
            content=vav_model(),
            headers={**server.auth("write"), "Content-Type": "text/turtle"},
        )
        assert r.status_code == 413 and r.json()["code"] == "payload_too_large"

        def chunks():  # no Content-Length: the limit must hold while streaming
            yield vav_model().encode()

        r = httpx.put(
            f"{server.url}/rdf-graphs",
            params={"graph": graph_iri},
            content=chunks(),
            headers={**server.auth("write"), "Content-Type": "text/turtle"},
        )
        assert r.status_code == 413
    finally:
        settings.max_upload_bytes = old
    assert graph_iri not in server.platform.store.graph_names()
    long_query = "SELECT * WHERE { ?s ?p ?o } #" + "x" * (
        server.platform.sparql.limits.max_query_length + 1
    )
    r = httpx.post(
        f"{server.url}/sparql",
        content=long_query,
        headers={**server.auth("read"), "Content-Type": "application/sparql-query"},
    )
    assert r.status_code == 413 and r.json()["code"] == "query_too_long"
