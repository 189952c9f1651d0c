"""Revisions and time travel against real stores (embedded and `oxigraph serve`) and PostgreSQL."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from pyoxigraph import RdfFormat

from app.errors import NotFoundError, ValidationFailedError
from app.events.model import EventFilter
from app.platform import Platform
from tests.factories import PREFIXES, broken_unit_model, vav_model


def _ingest(platform: Platform, graph: str, turtle: str, **kw: object) -> None:
    platform.models.ingest(
        graph=graph, data=turtle.encode(), fmt=RdfFormat.TURTLE, author="alice", **kw
    )


def _labels(platform: Platform, store: object, graph: str) -> set[str]:
    res = store.query(  # type: ignore[attr-defined]
        f"SELECT ?l WHERE {{ GRAPH <{graph}> {{ ?s <http://www.w3.org/2000/01/rdf-schema#label> ?l }} }}",
        union_default=False,
    )
    return {row["l"].value for row in res}


def _instant() -> datetime:
    # Revision times come from the database clock; step past a millisecond boundary.
    time.sleep(0.02)
    now = datetime.now(UTC)
    time.sleep(0.02)
    return now


def test_three_revisions_and_the_model_as_of_each(platform: Platform, graph_iri: str) -> None:
    assert platform.revisions is not None and platform.history is not None
    before_any = _instant()
    _ingest(platform, graph_iri, vav_model("v1"))
    t1 = _instant()
    _ingest(platform, graph_iri, vav_model("v2", ts="3f2a6c3e-0000-4000-8000-000000000002"))
    t2 = _instant()
    _ingest(
        platform,
        graph_iri,
        PREFIXES + 'ex:extra a brick:Site ; rdfs:label "Extra site" .',
        mode="merge",
    )
    t3 = _instant()

    revisions = platform.revisions.find(graph=graph_iri)
    assert [r.operation for r in revisions] == ["replace", "replace", "merge"]
    assert all(r.author == "alice" for r in revisions)
    assert revisions[0].removed == 0 and revisions[0].added > 0
    assert revisions[1].removed > 0  # v1's triples went away
    assert (revisions[2].added, revisions[2].removed) == (2, 0)

    v1 = {"AHU v1", "VAV v1", "v1 zone air temperature"}
    v2 = {"AHU v2", "VAV v2", "v2 zone air temperature"}
    store1, rev1 = platform.history.store_at(t1)
    assert rev1 == revisions[0].id
    assert _labels(platform, store1, graph_iri) == v1
    store2, _ = platform.history.store_at(t2)
    assert _labels(platform, store2, graph_iri) == v2
    store3, rev3 = platform.history.store_at(t3)
    assert rev3 == revisions[2].id and store3 is platform.store  # nothing newer: the live store
    assert _labels(platform, store3, graph_iri) == v2 | {"Extra site"}
    store0, _ = platform.history.store_at(before_any)
    assert _labels(platform, store0, graph_iri) == set()

    # The view answers class-path queries like the live store: inferred types are rebuilt.
    res = store1.query(
        "SELECT ?s WHERE { ?s a <https://brickschema.org/schema/Brick#Temperature_Sensor> }",
    )
    assert any(row["s"].value == "urn:ex:v1-zat" for row in res)

    # The as-of graph is exactly what the graph held: blank nodes included.
    graphs = platform.history.graphs_at(rev1)
    assert len(graphs[graph_iri]) == revisions[0].added

    diff = platform.revisions.diff(revisions[0].id, revisions[2].id, graph=graph_iri)
    added = b"\n".join(diff.added[graph_iri]).decode()
    removed = b"\n".join(diff.removed[graph_iri]).decode()
    assert "Extra site" in added and "VAV v2" in added and "VAV v1" in removed
    back = platform.revisions.diff(revisions[2].id, revisions[0].id, graph=graph_iri)
    assert back.added == diff.removed and back.removed == diff.added


def test_unchanged_reingest_is_not_a_revision(platform: Platform, graph_iri: str) -> None:
    assert platform.revisions is not None
    _ingest(platform, graph_iri, vav_model("same"))
    # Same content, fresh blank nodes (the external reference): still no change.
    _ingest(platform, graph_iri, vav_model("same"))
    assert len(platform.revisions.find(graph=graph_iri)) == 1


def test_update_delete_and_failures_are_recorded_and_announced(
    platform: Platform, graph_iri: str
) -> None:
    assert platform.revisions is not None and platform.events is not None
    start = platform.events.last_id()
    _ingest(platform, graph_iri, vav_model("u1"))
    platform.models.apply_update(
        f'INSERT DATA {{ GRAPH <{graph_iri}> {{ <urn:ex:u1> <http://www.w3.org/2000/01/rdf-schema#comment> "updated" }} }}',
        author="bob",
    )
    with pytest.raises(ValidationFailedError):
        _ingest(platform, graph_iri, broken_unit_model("u1"))
    platform.models.delete(graph_iri, author="carol")
    with pytest.raises(NotFoundError):
        platform.models.delete(graph_iri, author="carol")

    ops = [(r.operation, r.author) for r in platform.revisions.find(graph=graph_iri)]
    assert ops == [("replace", "alice"), ("update", "bob"), ("delete", "carol")]
    events = platform.events.fetch(after_id=start, filter=EventFilter.of(graphs=[graph_iri]))
    assert [(e.type, e.ok) for e in events] == [
        ("model.replaced", True),
        ("model.updated", True),
        ("validation.failed", False),
        ("model.deleted", True),
    ]
    failed = events[2]
    assert failed.author == "alice" and failed.data["violations"] >= 1
    assert failed.data["results"][0]["focus_node"] == "urn:ex:u1-zat"
    assert events[1].data["revision"] is not None and events[1].data["added"] == 1

    # After the delete, the graph as of before it still answers.
    update_time = platform.revisions.find(graph=graph_iri)[1].time
    assert platform.history is not None
    view, _ = platform.history.store_at(update_time)
    assert _labels(platform, view, graph_iri) == {"AHU u1", "VAV u1", "u1 zone air temperature"}


def test_a_model_event_names_its_committed_revision(platform: Platform, graph_iri: str) -> None:
    assert platform.revisions is not None and platform.events is not None
    _ingest(platform, graph_iri, vav_model("v1"))
    (revision,) = platform.revisions.find(graph=graph_iri)
    events = [e for e in platform.events.fetch(after_id=0, limit=100_000) if e.graph == graph_iri]
    assert [(e.type, e.data["revision"]) for e in events] == [("model.replaced", revision.id)]


def test_revision_and_model_event_commit_together_or_not_at_all(
    platform: Platform, graph_iri: str
) -> None:
    """The event insert fails (a constraint refuses it): the revision goes with it; the
    model itself, committed before, stays."""
    assert platform.revisions is not None and platform.events is not None
    with platform.revisions.connection() as conn:
        conn.execute(
            "ALTER TABLE events ADD CONSTRAINT test_refuse_graph "
            f"CHECK (graph IS DISTINCT FROM '{graph_iri}') NOT VALID"
        )
    try:
        _ingest(platform, graph_iri, vav_model("v1"))
    finally:
        with platform.revisions.connection() as conn:
            conn.execute("ALTER TABLE events DROP CONSTRAINT test_refuse_graph")
    assert _labels(platform, platform.store, graph_iri)  # the model is stored
    assert platform.revisions.find(graph=graph_iri) == []
    assert not [e for e in platform.events.fetch(after_id=0, limit=100_000) if e.graph == graph_iri]
