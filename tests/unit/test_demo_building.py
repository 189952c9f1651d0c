"""The demo building: deterministic, sized as promised, Brick 1.5 conformant, well-formed points."""

from __future__ import annotations

import uuid
from pathlib import Path

import pyoxigraph as ox
import pytest

from app.domain.iris import BRICK, OWL, QUDT, RDF_TYPE, RDFS, REC, REF, UNIT
from ingest.demo_building import (
    generate_building,
    main,
    size_for,
    to_turtle,
    triple_count,
)

REPO = Path(__file__).resolve().parents[2]
BINARY_POINT_CLASSES = {BRICK + "Fan_Status", BRICK + "Start_Stop_Command"}
EXPECTED_UNITS = {UNIT + u for u in ("DEG_C", "PERCENT", "L-PER-SEC", "PA", "KiloW", "KiloW-HR")}


def v(term: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple) -> str:
    """The lexical value of a term (never a quoted triple here)."""
    assert not isinstance(term, ox.Triple)
    return term.value


def store_of(triples: list[ox.Triple]) -> ox.Store:
    store = ox.Store()
    store.extend(ox.Quad(t.subject, t.predicate, t.object) for t in triples)
    return store


def select(store: ox.Store, query: str) -> list[ox.QuerySolution]:
    prefixes = {"brick": BRICK, "rec": REC, "ref": REF, "rdfs": RDFS, "owl": OWL, "qudt": QUDT}
    result = store.query(query, prefixes=prefixes)
    assert isinstance(result, ox.QuerySolutions)
    return list(result)


def ask(store: ox.Store, query: str) -> bool:
    result = store.query(query, prefixes={"brick": BRICK, "rdfs": RDFS, "owl": OWL})
    assert isinstance(result, ox.QueryBoolean)
    return bool(result)


def count(store: ox.Store, cls: str) -> int:
    return len(select(store, f"SELECT DISTINCT ?x WHERE {{ ?x a {cls} }}"))


def brick_ttl() -> Path:
    import brickschema

    return Path(brickschema.__file__).parent / "ontologies" / "1.5" / "Brick.ttl"


def test_same_arguments_give_identical_output() -> None:
    first = generate_building(floors=2, vavs_per_floor=3, seed=7)
    second = generate_building(floors=2, vavs_per_floor=3, seed=7)
    assert first == second
    assert to_turtle(first) == to_turtle(second)


def test_seed_and_base_change_the_timeseries_ids_but_not_the_size() -> None:
    def ids(triples: list[ox.Triple]) -> set[str]:
        return {v(t.object) for t in triples if t.predicate.value == REF + "hasTimeseriesId"}

    base = generate_building(floors=1, vavs_per_floor=2, seed=0)
    other_seed = generate_building(floors=1, vavs_per_floor=2, seed=1)
    other_base = generate_building(floors=1, vavs_per_floor=2, base="https://example.org/b1/")
    assert len(base) == len(other_seed) == len(other_base)
    assert ids(base).isdisjoint(ids(other_seed))
    assert ids(base).isdisjoint(ids(other_base))
    assert all(
        v(t.subject).startswith("https://example.org/b1/")
        for t in other_base
        if isinstance(t.subject, ox.NamedNode)
    )


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        generate_building(floors=0)
    with pytest.raises(ValueError):
        generate_building(base="not an iri ")


@pytest.mark.parametrize(("floors", "vavs", "ahus"), [(1, 1, 1), (1, 4, 1), (3, 6, 2), (5, 2, 2)])
def test_counts_follow_the_arguments(floors: int, vavs: int, ahus: int) -> None:
    store = store_of(generate_building(floors=floors, vavs_per_floor=vavs))
    assert count(store, "rec:Site") == 1
    assert count(store, "rec:Building") == 1
    assert count(store, "rec:Level") == floors
    assert count(store, "rec:HVACZone") == floors * vavs
    assert count(store, "brick:Air_Handling_Unit") == ahus
    assert count(store, "brick:Variable_Air_Volume_Box_With_Reheat") == floors * vavs
    assert count(store, "brick:Building_Electrical_Meter") == 1
    fed = select(
        store,
        "SELECT ?ahu (COUNT(?vav) AS ?n) WHERE { ?ahu a brick:Air_Handling_Unit ;"
        " brick:feeds ?vav . ?vav a brick:Variable_Air_Volume_Box_With_Reheat }"
        " GROUP BY ?ahu",
    )
    assert sum(int(row["n"].value) for row in fed) == floors * vavs
    zones_fed = select(store, "SELECT DISTINCT ?z WHERE { ?v brick:feeds ?z . ?z a rec:HVACZone }")
    assert len(zones_fed) == floors * vavs


def test_every_point_has_label_unit_equipment_and_one_timeseries_uuid() -> None:
    store = store_of(generate_building(floors=2, vavs_per_floor=3))
    rows = select(
        store,
        """
        SELECT ?point (SAMPLE(?cls) AS ?class) (COUNT(DISTINCT ?unit) AS ?units)
               (COUNT(DISTINCT ?id) AS ?ids) (SAMPLE(?id) AS ?some_id)
               (COUNT(DISTINCT ?label) AS ?labels) (COUNT(DISTINCT ?eq) AS ?equipment)
        WHERE {
          ?point brick:isPointOf ?eq ; a ?cls .
          ?eq brick:hasPoint ?point .
          OPTIONAL { ?point rdfs:label ?label }
          OPTIONAL { ?point brick:hasUnit ?unit }
          OPTIONAL { ?point ref:hasExternalReference ?ref .
                     ?ref a ref:TimeseriesReference ; ref:hasTimeseriesId ?id }
        } GROUP BY ?point""",
    )
    assert len(rows) > 50
    all_ids = []
    for row in rows:
        point, cls = row["point"].value, row["class"].value
        assert row["labels"].value == "1", point
        assert row["equipment"].value == "1", point
        assert row["ids"].value == "1", point
        all_ids.append(str(uuid.UUID(row["some_id"].value)))
        assert row["some_id"].value == all_ids[-1]  # canonical lowercase form
        expected_units = "0" if cls in BINARY_POINT_CLASSES else "1"
        assert row["units"].value == expected_units, (point, cls)
    assert len(set(all_ids)) == len(all_ids)
    units = {r["u"].value for r in select(store, "SELECT DISTINCT ?u { ?p brick:hasUnit ?u }")}
    assert units == EXPECTED_UNITS
    # the external references hang off points only (a Brick 1.5 SPARQL constraint)
    assert not select(
        store,
        "SELECT ?x { ?x ref:hasExternalReference ?r FILTER NOT EXISTS { ?x brick:isPointOf ?e } }",
    )


def test_spaces_form_one_tree_and_equipment_is_located() -> None:
    store = store_of(generate_building(floors=2, vavs_per_floor=2))
    several_parents = select(
        store,
        "SELECT ?s (COUNT(?p) AS ?n) { ?s rec:isPartOf ?p } GROUP BY ?s HAVING (COUNT(?p) > 1)",
    )
    assert several_parents == []  # REC allows one rec:isPartOf per space
    unlocated = select(
        store,
        "SELECT ?e { ?e brick:hasPoint ?p "
        "FILTER NOT EXISTS { ?e brick:hasLocation ?l } "
        "FILTER NOT EXISTS { ?e brick:isPartOf ?whole } }",
    )
    assert unlocated == []
    rooms = select(
        store, "SELECT ?z (COUNT(?r) AS ?n) { ?z a rec:HVACZone ; rec:hasPart ?r } GROUP BY ?z"
    )
    assert [row["n"].value for row in rooms] == ["2"] * 4


def test_every_class_used_exists_in_brick_1_5_and_is_not_deprecated() -> None:
    ontology = ox.Store()
    ontology.load(path=str(brick_ttl()), format=ox.RdfFormat.TURTLE)
    used = {
        v(t.object)
        for t in generate_building(floors=2, vavs_per_floor=2)
        if t.predicate.value == RDF_TYPE
    }
    assert len(used) > 25
    for cls in sorted(used):
        declared = ask(ontology, f"ASK {{ <{cls}> a ?k VALUES ?k {{ owl:Class rdfs:Class }} }}")
        assert declared, f"{cls} is not a class in Brick 1.5"
        deprecated = ask(
            ontology,
            f"ASK {{ {{ <{cls}> owl:deprecated true }} UNION {{ <{cls}> brick:deprecation ?d }} }}",
        )
        assert not deprecated, f"{cls} is deprecated in Brick 1.5"


@pytest.mark.parametrize(("floors", "vavs"), [(1, 1), (1, 5), (2, 1), (3, 6), (7, 3)])
def test_triple_count_is_exact(floors: int, vavs: int) -> None:
    assert triple_count(floors, vavs) == len(generate_building(floors=floors, vavs_per_floor=vavs))


@pytest.mark.parametrize("target", [5_000, 50_000, 500_000])
def test_size_for_reaches_the_benchmark_sizes(target: int) -> None:
    floors, vavs = size_for(target)
    assert floors >= 2 and vavs >= floors  # a real multi-floor building, wider than tall
    assert abs(triple_count(floors, vavs) - target) <= 0.05 * target


@pytest.mark.slow
@pytest.mark.parametrize("target", [5_000, 50_000, 500_000])
def test_generated_sizes_match(target: int) -> None:
    # How fast generation is belongs to `make bench`, not to a timed test.
    floors, vavs = size_for(target)
    triples = generate_building(floors=floors, vavs_per_floor=vavs)
    assert abs(len(triples) - target) <= 0.15 * target
    assert len(triples) == triple_count(floors, vavs)


def test_size_for_small_and_bad_targets() -> None:
    assert size_for(1) == (1, 1)
    with pytest.raises(ValueError):
        size_for(0)


def test_turtle_reparses_to_the_same_triples() -> None:
    triples = generate_building(floors=2, vavs_per_floor=2)
    text = to_turtle(triples)
    assert text.startswith("@prefix")
    assert "brick:Air_Handling_Unit" in text and "unit:DEG_C" in text
    reparsed = list(ox.parse(text, format=ox.RdfFormat.TURTLE))
    assert len(reparsed) == len(triples)
    named = {
        (t.subject, t.predicate, t.object)
        for t in triples
        if not isinstance(t.subject, ox.BlankNode) and not isinstance(t.object, ox.BlankNode)
    }
    assert named <= {(t.subject, t.predicate, t.object) for t in reparsed}


def test_cli_writes_turtle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo.ttl"
    assert main(["--floors", "1", "--vavs-per-floor", "2", "-o", str(out)]) == 0
    assert len(list(ox.parse(path=str(out), format=ox.RdfFormat.TURTLE))) == triple_count(1, 2)
    assert f"{triple_count(1, 2)} triples" in capsys.readouterr().err


def qudt_unit_types(units: set[str]) -> list[ox.Triple]:
    """The ``rdf:type`` triples of ``units`` from a QUDT 3.1 file present here, else skip."""
    candidates = [
        REPO / "ontologies" / "node_modules" / "@vocabulary" / "unit" / "unit.nq",
        REPO.parent
        / "shared"
        / "data"
        / "ontologies"
        / "brick-1.4.4"
        / "imports"
        / "VOCAB_QUDT-UNITS-ALL.ttl",
    ]
    path = next((p for p in candidates if p.exists()), None)
    if path is None:
        pytest.skip("no QUDT units file here (npm @vocabulary/unit or ../shared/data)")
    fmt = ox.RdfFormat.N_QUADS if path.suffix == ".nq" else ox.RdfFormat.TURTLE
    found = [
        ox.Triple(q.subject, q.predicate, q.object)
        for q in ox.parse(path=str(path), format=fmt)
        if v(q.subject) in units and q.predicate.value == RDF_TYPE
    ]
    assert {v(t.subject) for t in found} == units, "a unit the demo uses is not in QUDT"
    return found


@pytest.mark.slow
def test_conforms_to_brick_1_5_shapes() -> None:
    """brickschema + shifty, as Brick's own tooling checks: no result on any node of ours.

    Brick itself is in the data graph there, so its own classes yield ~47 violations about
    QUDT quantity kinds; only results whose focus node belongs to the model count.
    """
    import brickschema
    import rdflib
    from rdflib.namespace import SH

    triples = generate_building(floors=2, vavs_per_floor=1)
    units = {v(t.object) for t in triples if t.predicate.value == BRICK + "hasUnit"}
    model = rdflib.Graph().parse(data=to_turtle(triples), format="turtle")
    graph = brickschema.Graph(load_brick=True)
    graph += model
    for t in qudt_unit_types(units):
        graph.add((rdflib.URIRef(v(t.subject)), rdflib.RDF.type, rdflib.URIRef(v(t.object))))
    ours = set(model.subjects()) | set(model.objects())
    _, results, _ = graph.validate(engine="shifty")
    problems = [
        (
            str(results.value(r, SH.focusNode)),
            str(results.value(r, SH.resultSeverity)),
            str(results.value(r, SH.resultMessage)),
        )
        for r in results.subjects(rdflib.RDF.type, SH.ValidationResult)
        if results.value(r, SH.focusNode) in ours
    ]
    assert problems == []
