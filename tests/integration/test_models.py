"""Model ingest through the service layer, against both store modes."""

from __future__ import annotations

import pytest
from pyoxigraph import RdfFormat

from app.domain.iris import inferred_graph_for
from app.errors import ForbiddenError, InvalidInputError, NotFoundError, ValidationFailedError
from app.platform import Platform
from tests.factories import PREFIXES, broken_unit_model, vav_model


def ingest(platform: Platform, graph: str, ttl: str, **kw: object):  # type: ignore[no-untyped-def]
    return platform.models.ingest(graph=graph, data=ttl.encode(), fmt=RdfFormat.TURTLE, **kw)


def whole_store(platform: Platform) -> bytes:
    return platform.store.dump(None, RdfFormat.N_QUADS)


def test_ingest_conforming_model_commits_it_and_its_inferred_types(
    platform: Platform, graph_iri: str
) -> None:
    result = ingest(platform, graph_iri, vav_model())
    assert result.report is not None and result.report.conforms
    assert result.graph_triples == result.triples_in == 13
    sizes = platform.store.graph_sizes()
    assert sizes[graph_iri] == 13
    # Asserted and inferred triples live apart.
    assert sizes[inferred_graph_for(graph_iri)] == result.inferred_triples > 0
    inferred = platform.store.dump(inferred_graph_for(graph_iri), RdfFormat.N_TRIPLES).decode()
    assert "<https://brickschema.org/schema/Brick#Temperature_Sensor>" in inferred
    assert "<https://brickschema.org/schema/Brick#Zone_Air_Temperature_Sensor>" not in inferred


def test_violation_commits_nothing_and_reports_focus_node(
    platform: Platform, graph_iri: str
) -> None:
    before = whole_store(platform)
    with pytest.raises(ValidationFailedError) as info:
        ingest(platform, graph_iri, broken_unit_model())
    report = info.value.extra["report"]
    assert report["conforms"] is False
    focus = {r["focus_node"] for r in report["results"] if r["severity"] == "Violation"}
    assert "urn:ex:bad-zat" in focus
    paths = {r["path"] for r in report["results"] if r["focus_node"] == "urn:ex:bad-zat"}
    assert "https://brickschema.org/schema/Brick#hasUnit" in paths
    assert whole_store(platform) == before


def test_malformed_turtle_reports_line_and_column_and_changes_nothing(
    platform: Platform, graph_iri: str
) -> None:
    before = whole_store(platform)
    bad = PREFIXES + "ex:a a brick:AHU ;\n  brick:feeds .\n"
    with pytest.raises(InvalidInputError) as info:
        ingest(platform, graph_iri, bad)
    assert info.value.code == "parse_error"
    assert info.value.extra["line"] == 8
    assert info.value.extra["column"] is not None
    assert "line 8" in info.value.detail
    assert whole_store(platform) == before


def test_replace_drops_old_triples_and_merge_keeps_them(platform: Platform, graph_iri: str) -> None:
    ingest(platform, graph_iri, vav_model("a", ts="3f2a6c3e-0000-4000-8000-00000000000a"))
    ingest(
        platform, graph_iri, vav_model("b", ts="3f2a6c3e-0000-4000-8000-00000000000b"), mode="merge"
    )
    text = platform.models.export(graph_iri, RdfFormat.N_TRIPLES).decode()
    assert "urn:ex:a-zat" in text and "urn:ex:b-zat" in text
    ingest(platform, graph_iri, vav_model("c", ts="3f2a6c3e-0000-4000-8000-00000000000c"))
    text = platform.models.export(graph_iri, RdfFormat.N_TRIPLES).decode()
    assert "urn:ex:a-zat" not in text and "urn:ex:c-zat" in text
    inferred = platform.store.dump(inferred_graph_for(graph_iri), RdfFormat.N_TRIPLES).decode()
    assert "urn:ex:a-zat" not in inferred and "urn:ex:c-zat" in inferred


def test_merge_that_breaks_shapes_is_rejected_by_delta_validation(
    platform: Platform, graph_iri: str
) -> None:
    ingest(platform, graph_iri, vav_model("ok"))
    before = whole_store(platform)
    with pytest.raises(ValidationFailedError):
        ingest(platform, graph_iri, broken_unit_model("late"), mode="merge")
    assert whole_store(platform) == before


def test_lenient_mode_accepts_invalid_iris(platform: Platform, graph_iri: str) -> None:
    bad_iri = PREFIXES + "<urn:ex:has space> a brick:AHU .\n"
    with pytest.raises(InvalidInputError, match="lenient"):
        ingest(platform, graph_iri, bad_iri)
    result = ingest(platform, graph_iri, bad_iri, lenient=True)
    assert result.graph_triples == 1
    # Stored repaired, so every client (and the remote store) can read it back.
    assert "<urn:ex:has%20space>" in platform.models.export(graph_iri, RdfFormat.N_TRIPLES).decode()


def test_delete_graph_removes_model_and_inferred(platform: Platform, graph_iri: str) -> None:
    ingest(platform, graph_iri, vav_model())
    platform.models.delete(graph_iri)
    names = platform.store.graph_names()
    assert graph_iri not in names and inferred_graph_for(graph_iri) not in names
    with pytest.raises(NotFoundError):
        platform.models.delete(graph_iri)


def test_managed_graphs_cannot_be_written_as_models(platform: Platform) -> None:
    with pytest.raises(ForbiddenError):
        ingest(platform, "urn:twingraph:ontology:brick", vav_model())


def test_sparql_update_is_validated_and_reverted_on_violation(
    platform: Platform, graph_iri: str
) -> None:
    ingest(platform, graph_iri, vav_model("u"))
    ok = platform.models.apply_update(
        f"PREFIX rdfs: <http://www.w3.org/2000/01/rdf-schema#> "
        f'INSERT DATA {{ GRAPH <{graph_iri}> {{ <urn:ex:u> rdfs:comment "checked" }} }}'
    )
    assert ok.changed == {graph_iri: (1, 0)}
    before = whole_store(platform)
    with pytest.raises(ValidationFailedError):
        platform.models.apply_update(
            "PREFIX brick: <https://brickschema.org/schema/Brick#> "
            f"DELETE {{ GRAPH <{graph_iri}> {{ ?p brick:hasUnit ?u }} }} "
            f"INSERT {{ GRAPH <{graph_iri}> {{ ?p brick:hasUnit <http://qudt.org/vocab/unit/NOPE> }} }} "
            f"WHERE {{ GRAPH <{graph_iri}> {{ ?p brick:hasUnit ?u }} }}"
        )
    assert whole_store(platform) == before


def test_sparql_update_on_managed_graph_needs_admin(platform: Platform) -> None:
    before = whole_store(platform)
    with pytest.raises(ForbiddenError):
        platform.models.apply_update(
            "INSERT DATA { GRAPH <urn:twingraph:ontology:brick> { <urn:a> <urn:b> <urn:c> } }"
        )
    assert whole_store(platform) == before


def test_inferred_types_follow_sparql_updates(platform: Platform, graph_iri: str) -> None:
    platform.models.apply_update(
        "PREFIX brick: <https://brickschema.org/schema/Brick#> "
        f"INSERT DATA {{ GRAPH <{graph_iri}> {{ <urn:ex:new-ahu> a brick:AHU }} }}"
    )
    inferred = platform.store.dump(inferred_graph_for(graph_iri), RdfFormat.N_TRIPLES).decode()
    assert (
        "<urn:ex:new-ahu> <http://www.w3.org/1999/02/22-rdf-syntax-ns#type> <https://brickschema.org/schema/Brick#Equipment>"
        in inferred
    )


def test_large_new_model_is_bulk_loaded_completely(platform: Platform, graph_iri: str) -> None:
    from app.graph.models import BULK_MIN_QUADS, LOADING
    from ingest.demo_building import generate_building, size_for

    floors, vavs = size_for(50_000)
    triples = generate_building(floors=floors, vavs_per_floor=vavs, base="urn:bulk:")
    result = platform.models.ingest_triples(graph=graph_iri, triples=triples)
    assert result.triples_in + result.inferred_triples >= BULK_MIN_QUADS  # the bulk path ran
    assert result.graph_triples == len(triples)
    assert platform.store.graph_sizes()[inferred_graph_for(graph_iri)] == result.inferred_triples
    markers = platform.sparql.run(f"ASK {{ GRAPH ?g {{ ?s <{LOADING}> ?o }} }}", accept="json")
    assert b"false" in markers.body


def test_unfinished_bulk_load_is_dropped_and_hidden_meanwhile(
    platform: Platform, graph_iri: str
) -> None:
    from app.domain.iris import SYSTEM_GRAPH
    from app.graph.models import LOADING

    platform.models.apply_update(
        f"INSERT DATA {{ GRAPH <{graph_iri}> {{ <urn:ex:half> a <urn:ex:Thing> }} }}"
    )
    # What a crash in the middle of a bulk load leaves: data plus the loading marker.
    platform.store.update(
        f"INSERT DATA {{ GRAPH <{SYSTEM_GRAPH}> {{ <{graph_iri}> <{LOADING}> true }} }}"
    )
    platform.models._loading.add(graph_iri)
    try:
        seen = platform.sparql.run("SELECT * WHERE { <urn:ex:half> ?p ?o }", accept="csv")
        assert seen.body.strip() in (b"p,o", b"o,p")  # header only: no rows
        assert graph_iri not in {g.iri for g in platform.models.graphs()}
    finally:
        platform.models._loading.discard(graph_iri)
    assert platform.models.drop_unfinished_loads() == [graph_iri]
    assert graph_iri not in platform.store.graph_names()


def test_a_dataset_of_hundreds_of_graphs_is_queryable(platform: Platform, graph_iri: str) -> None:
    # A bulk load in progress makes queries name every visible graph; with many models
    # that list outgrows a URL (the remote store then sends it in the body).
    platform.models.apply_update(
        f"INSERT DATA {{ GRAPH <{graph_iri}> {{ <urn:ex:many> a <urn:ex:Thing> }} }}"
    )
    graphs = [f"urn:twingraph:model:padding-{i:04d}-{'x' * 60}" for i in range(600)]
    res = platform.store.query(
        "SELECT ?s WHERE { ?s a <urn:ex:Thing> }",
        default_graphs=[*graphs, graph_iri],
        named_graphs=[*graphs, graph_iri],
    )
    assert [row["s"].value for row in res] == ["urn:ex:many"]  # type: ignore[union-attr,index]
