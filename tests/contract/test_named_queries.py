"""Every named query in queries/ has a valid header and answers on the demo building."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import brickschema
import pyoxigraph as ox
import pytest

from app.domain.iris import RDFS, REF, XSD, inferred_graph_for, ontology_graph
from app.errors import InvalidInputError
from app.graph.named_queries import (
    NamedQuery,
    QueryParam,
    bind_params,
    load_named_queries,
    parse_named_query,
    with_values,
)
from ingest.demo_building import DEFAULT_BASE, generate_building

Substitutions = dict[ox.Variable, ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple]
QUERIES_ROOT = Path(__file__).resolve().parents[2] / "queries"
QUERIES = load_named_queries(QUERIES_ROOT)
MODEL_GRAPH = ox.NamedNode("urn:twingraph:model:demo")
BRICK_GRAPH = ox.NamedNode(ontology_graph("brick"))
INFERRED_GRAPH = ox.NamedNode(inferred_graph_for(MODEL_GRAPH.value))
B = DEFAULT_BASE

#: A sensible value for every parameter of every shipped query (on the fixture building).
SAMPLES: dict[str, dict[str, str]] = {
    "points/of_equipment": {"equipment": B + "bldg/ahu-1"},
    "points/by_class": {"class": "brick:Temperature_Sensor"},
    "points/by_timeseries_id": {"timeseries_id": "<first id in the store>"},
    "equipment/by_class": {"class": "brick:AHU"},
    "equipment/in_space": {"space": B + "bldg/L01"},
    "zones/fed_by": {"zone": B + "bldg/L01/zone-01"},
    "zones/temperatures": {"level": B + "bldg/L02"},
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ox.Store]:
    """On-disk Oxigraph laid out as the platform does it.

    A 2 x 2 demo building in a model graph, Brick 1.5 in an ontology graph, and the model's
    superclass memberships materialised in its inferred graph.
    """
    store = ox.Store(str(tmp_path_factory.mktemp("named-queries")))
    triples = generate_building(floors=2, vavs_per_floor=2)
    store.extend(ox.Quad(t.subject, t.predicate, t.object, MODEL_GRAPH) for t in triples)
    brick = Path(brickschema.__file__).parent / "ontologies" / "1.5" / "Brick.ttl"
    store.load(path=str(brick), format=ox.RdfFormat.TURTLE, to_graph=BRICK_GRAPH)
    store.update(f"""
        INSERT {{ GRAPH {INFERRED_GRAPH} {{ ?x a ?super }} }}
        WHERE {{
          GRAPH {MODEL_GRAPH} {{ ?x a ?class }}
          GRAPH {BRICK_GRAPH} {{ ?class <{RDFS}subClassOf>+ ?super }}
          FILTER NOT EXISTS {{ GRAPH {MODEL_GRAPH} {{ ?x a ?super }} }}
        }}""")
    assert len(store) > len(triples) + 50_000
    yield store
    del store


def sample_params(key: str, store: ox.Store) -> dict[str, str]:
    raw = dict(SAMPLES.get(key, {}))
    if raw.get("timeseries_id") == "<first id in the store>":
        result = store.query(
            f"SELECT ?id WHERE {{ ?r <{REF}hasTimeseriesId> ?id }} LIMIT 1",
            use_default_graph_as_union=True,
        )
        assert isinstance(result, ox.QuerySolutions)
        raw["timeseries_id"] = next(iter(result))["id"].value
    return raw


def test_the_library_is_there() -> None:
    assert 8 <= len(QUERIES) <= 15
    for key in (
        "points/of_equipment",
        "points/by_class",
        "zones/fed_by",
        "locations/tree",
        "ahus/list",
        "meters/list",
    ):
        assert key in QUERIES


@pytest.mark.parametrize("key", sorted(QUERIES))
def test_header(key: str) -> None:
    q = QUERIES[key]
    assert q.key == key and q.title and q.description and q.returns
    for line in q.text.splitlines()[:4]:
        assert line.startswith("# ")
    for prefix in ("brick", "rdfs"):
        if f"{prefix}:" in q.text.split("SELECT", 1)[-1]:
            assert f"PREFIX {prefix}:" in q.text, "queries are standalone: declare prefixes"
    missing = [p.name for p in q.params if p.required and p.name not in SAMPLES.get(key, {})]
    assert missing == [], "add a sample value for each required parameter to SAMPLES"


@pytest.mark.parametrize("key", sorted(QUERIES))
def test_runs_on_the_demo_building_with_substitutions(key: str, store: ox.Store) -> None:
    q = QUERIES[key]
    bound = bind_params(q, sample_params(key, store))
    result = store.query(
        q.text,
        use_default_graph_as_union=True,
        substitutions={ox.Variable(name): term for name, term in bound.items()},
    )
    assert isinstance(result, ox.QuerySolutions)
    assert [v.value for v in result.variables] == q.returns, "'# returns:' must list the columns"
    rows = list(result)
    assert len(rows) >= 1
    for name, term in bound.items():
        assert all(row[name] == term for row in rows)


@pytest.mark.parametrize("key", sorted(QUERIES))
def test_values_binding_gives_the_same_answer(key: str, store: ox.Store) -> None:
    q = QUERIES[key]
    bound = bind_params(q, sample_params(key, store))

    def rows(text: str, subs: Substitutions | None) -> set[str]:
        result = store.query(text, use_default_graph_as_union=True, substitutions=subs)
        assert isinstance(result, ox.QuerySolutions)
        return {str(tuple(row)) for row in result}

    substituted = rows(q.text, {ox.Variable(n): t for n, t in bound.items()})
    assert rows(with_values(q, bound), None) == substituted


@pytest.mark.parametrize("key", sorted(QUERIES))
def test_materialised_superclass_types_change_nothing(key: str, store: ox.Store) -> None:
    """Same rows whether or not the default graph includes the inferred graph."""
    q = QUERIES[key]
    text = with_values(q, bind_params(q, sample_params(key, store)))

    def rows(result: object) -> list[str]:
        assert isinstance(result, ox.QuerySolutions)
        return sorted(str(tuple(row)) for row in result)

    with_inferred = rows(store.query(text, use_default_graph_as_union=True))
    assert with_inferred == rows(store.query(text, default_graph=[MODEL_GRAPH, BRICK_GRAPH]))
    assert len(with_inferred) == len(set(with_inferred))


def test_optional_parameter_left_unbound_widens_the_answer(store: ox.Store) -> None:
    q = QUERIES["zones/temperatures"]
    one_level = store.query(
        with_values(q, bind_params(q, SAMPLES[q.key])), use_default_graph_as_union=True
    )
    every_level = store.query(with_values(q, bind_params(q, {})), use_default_graph_as_union=True)
    assert isinstance(one_level, ox.QuerySolutions) and isinstance(every_level, ox.QuerySolutions)
    assert len(list(every_level)) == 2 * len(list(one_level)) == 4


def test_alias_classes_are_found(store: ox.Store) -> None:
    """brick:AHU is an alias of brick:Air_Handling_Unit, the class the demo uses."""
    q = QUERIES["equipment/by_class"]
    for cls in ("brick:AHU", "brick:Air_Handling_Unit", "brick:HVAC_Equipment"):
        result = store.query(
            with_values(q, bind_params(q, {"class": cls})), use_default_graph_as_union=True
        )
        assert isinstance(result, ox.QuerySolutions)
        labels = {row["label"].value for row in result}
        assert {"AHU-1", "AHU-2"} <= labels, cls


def query_with(params: str) -> NamedQuery:
    return parse_named_query(
        "test/q",
        f"""# title: T
# description: D
# params: {params}
# returns: x
SELECT ?x ?equipment ?n ?flag ?ratio ?name WHERE {{ ?x ?p ?equipment . ?x ?q ?n .
  ?x ?r ?flag . ?x ?s ?ratio . ?x ?t ?name }}
""",
    )


def test_bind_params_converts() -> None:
    q = query_with(
        "equipment (iri, required), n (integer, default=10), flag (boolean, optional),"
        " ratio (decimal), name (string)"
    )
    assert q.params[1] == QueryParam("n", "integer", required=False, default="10")
    bound = bind_params(
        q, {"equipment": "brick:AHU", "flag": "TRUE", "ratio": "-1.50", "name": "AHU-1"}
    )
    assert bound == {
        "equipment": ox.NamedNode("https://brickschema.org/schema/Brick#AHU"),
        "n": ox.Literal("10", datatype=ox.NamedNode(XSD + "integer")),
        "flag": ox.Literal("true", datatype=ox.NamedNode(XSD + "boolean")),
        "ratio": ox.Literal("-1.50", datatype=ox.NamedNode(XSD + "decimal")),
        "name": ox.Literal("AHU-1"),
    }
    assert bind_params(q, {"equipment": "<urn:x:1>"})["equipment"] == ox.NamedNode("urn:x:1")
    assert "flag" not in bind_params(q, {"equipment": "urn:x:1"})  # optional, no default


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, "needs parameter 'equipment'"),
        ({"equipment": "urn:x:1", "colour": "red"}, "no parameter 'colour'"),
        ({"equipment": "relative/path"}, "not an absolute IRI"),
        ({"equipment": "http://exa mple.org/"}, "not a valid IRI"),
        ({"equipment": "urn:x:1", "n": "1.5"}, "not an integer"),
        ({"equipment": "urn:x:1", "flag": "maybe"}, "not a boolean"),
        ({"equipment": "urn:x:1", "ratio": "1e5"}, "not a decimal"),
        ({"equipment": "urn:x:1", "ratio": "NaN"}, "not a decimal"),
    ],
)
def test_bind_params_errors(raw: dict[str, str], message: str) -> None:
    q = query_with(
        "equipment (iri, required), n (integer, default=10), flag (boolean),"
        " ratio (decimal), name (string)"
    )
    with pytest.raises(InvalidInputError, match=message) as info:
        bind_params(q, raw)
    assert info.value.status == 400
    assert info.value.extra["param"] in raw or info.value.extra["param"] == "equipment"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "# description: d\n# params: none\n# returns: x\nSELECT ?x WHERE { ?x ?p ?o }",
            "missing title",
        ),
        ("# title: t\n# returns: x\nSELECT ?x WHERE { ?x ?p ?o }", "missing params"),
        (
            "# title: t\n# param: none\n# params: none\n# returns: x\nSELECT ?x WHERE {}",
            "unknown header key 'param'",
        ),
        (
            "# title: t\n# params: a (uri)\n# returns: x\nSELECT ?x WHERE { ?x ?p ?a }",
            "unknown kind 'uri'",
        ),
        (
            "# title: t\n# params: a iri\n# returns: x\nSELECT ?x WHERE { ?x ?p ?a }",
            "bad parameter",
        ),
        (
            "# title: t\n# params: a (iri, required)\n# returns: x\nSELECT ?x WHERE { ?x ?p ?o }",
            "not used as \\?a",
        ),
        (
            "# title: t\n# params: a (iri)\n# returns: x\nSELECT ?x WHERE { BIND(1 AS ?a) }",
            "assigned in the query",
        ),
        (
            "# title: t\n# params: a (integer, default=ten)\n# returns: x\n"
            "SELECT ?x WHERE { ?x ?p ?a }",
            "bad default",
        ),
        (
            "# title: t\n# params: a (iri, required, default=urn:x)\n# returns: x\n"
            "SELECT ?x WHERE { ?x ?p ?a }",
            "required and has a default",
        ),
        ("# title: t\n# title: u\n# params: none\n# returns: x\nSELECT ?x WHERE {}", "twice"),
    ],
)
def test_malformed_headers_name_the_file(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "group").mkdir()
    (tmp_path / "group" / "bad.rq").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as info:
        load_named_queries(tmp_path)
    assert "bad.rq" in str(info.value)


def test_keys_are_paths_without_extension(tmp_path: Path) -> None:
    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "c.rq").write_text(
        "# title: t\n# params: none\n# returns: x\nSELECT ?x WHERE { ?x ?p ?o }", encoding="utf-8"
    )
    assert list(load_named_queries(tmp_path)) == ["a/b/c"]
