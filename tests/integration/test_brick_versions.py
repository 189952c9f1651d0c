"""Brick 1.4 and ASHRAE 223P: Brick's own examples (../shared/data) on a 1.4 platform.

Brick's CI validates each example with the Brick it builds from the same commit, plus its
imports; the examples declare ``owl:imports <https://brickschema.org/schema/1.4/Brick>``.
The platform here loads brickschema's Brick 1.4 (release 1.4.4), QUDT, and the 223P
extension (``TWINGRAPH_ONTOLOGY_EXTENSIONS=223p``), which ``connections/duct.ttl`` imports.
Opening a platform and preparing its shapes costs seconds, so there is one per module.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from pyoxigraph import NamedNode, RdfFormat, Triple

from app.domain.iris import BRICK, ONTOLOGY_GRAPH_PREFIX, RDF_TYPE, REC, inferred_graph_for
from app.errors import ValidationFailedError
from app.graph.embedded import EmbeddedStore
from app.graph.models import ModelService
from app.graph.ontology import (
    ClassHierarchy,
    OntologySource,
    brick_path,
    default_sources,
    ensure_loaded,
)
from app.graph.store import GraphStore
from app.graph.validation import ShaclValidator
from app.main import create_app
from app.platform import Platform, open_platform
from app.settings import Settings
from app.telemetry.ports import free_port
from ingest.demo_building import generate_building
from tests.conftest import SHARED_DATA, shared_data

EXAMPLES = sorted(SHARED_DATA.glob("brick/examples/*/*.ttl")) if SHARED_DATA.is_dir() else []
LIGHTING = "http://example.com/lighting#"
SWITCHED = "urn:twingraph:model:ingested-under-1.5"
SYSTEM = NamedNode("urn:test:lighting-system")
RDF_TYPE_NODE = NamedNode(RDF_TYPE)
LIGHTING_SYSTEM = NamedNode(BRICK + "Lighting_System")

#: Examples that conform under no released Brick: lighting.ttl uses terms that first appear
#: in Brick 1.5 (brick:Light_Source, brick:Power_Cycle_Count_Sensor, brick:expectedLifetime,
#: brick:ratedApparentPower, ...), so under 1.4.4 its light source is no Equipment and its
#: cycle counter no Point; under 1.5 its brick:Lighting_System is a rec:Collection, no
#: longer the brick:Entity that brick:isLocationOf wants (test_shared_models). It was written
#: against a Brick between the two releases. brickschema's own Graph.validate() with Brick
#: 1.4 and QUDT loaded flags the same four focus nodes.
NOT_BRICK_14 = {"lighting.ttl"}
#: Without 223P, Brick 1.4 rejects two more: duct.ttl (brick:isPointOf an
#: s223:OutletConnectionPoint: the 223P bridge replaces bsh:isPointOfShape by one that admits
#: connection points) and room_application.ttl (brick:isPointOf a rec:Zone, a
#: rec:Architecture that 1.4.4's bsh:isPointOfShape does not admit; 1.5's does, and so does
#: the 223P bridge's replacement shape).
NOT_PLAIN_BRICK_14 = NOT_BRICK_14 | {"duct.ttl", "room_application.ttl"}


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _left_by_brick_15(data_dir: Path) -> set[str]:
    """A store as a Brick 1.5 platform with one more ontology file left it: Brick 1.5, an
    ``extra-0`` graph, and a model with the inferred types 1.5 gives it. Returns those types."""
    settings = Settings(data_dir=data_dir)
    extra = data_dir / "extra.ttl"
    extra.write_text(
        "<urn:test:A> <http://www.w3.org/2000/01/rdf-schema#subClassOf> <urn:test:B> ."
    )
    store = EmbeddedStore(settings.store_dir)
    try:
        ensure_loaded(
            store, [OntologySource("brick", brick_path("1.5")), OntologySource("extra-0", extra)]
        )
        models = ModelService(
            store=store, validator=None, hierarchy=ClassHierarchy.from_store(store), replaced_by={}
        )
        models.ingest_triples(
            graph=SWITCHED, triples=[Triple(SYSTEM, RDF_TYPE_NODE, LIGHTING_SYSTEM)]
        )
        return _inferred_classes(store)
    finally:
        store.close()


def _inferred_classes(store: GraphStore) -> set[str]:
    rows = store.query(
        f"SELECT ?c WHERE {{ GRAPH <{inferred_graph_for(SWITCHED)}> {{ <{SYSTEM.value}> a ?c }} }}",
        union_default=False,
    )
    return {row["c"].value for row in rows}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def data_dir_14(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    shared_data()
    data_dir = tmp_path_factory.mktemp("brick-1.4")
    return data_dir, _left_by_brick_15(data_dir)


@pytest.fixture(scope="module")
def platform_14(data_dir_14: tuple[Path, set[str]]) -> Iterator[Platform]:
    """The data directory a 1.5 platform used, opened with Brick 1.4 and 223P."""
    settings = Settings(data_dir=data_dir_14[0], brick_version="1.4", ontology_extensions=["223p"])
    platform = open_platform(settings, telemetry=False)
    yield platform
    platform.close()


@pytest.fixture(scope="module")
def plain_14() -> ShaclValidator:
    """Brick 1.4 and QUDT only: shapes prepared once for the module."""
    sources = default_sources(Settings().qudt_dir, brick_version="1.4")
    return ShaclValidator.from_files([s.path for s in sources])


def test_the_platform_loads_brick_14_and_223p(platform_14: Platform) -> None:
    names = [s.name for s in platform_14.sources]
    assert names[0] == "brick" and platform_14.sources[0].path.parts[-2:] == ("1.4", "Brick.ttl")
    assert {"223p", "223p-brick", "223p-interpret", "223p-mappings"} <= set(names)
    assert platform_14.startup["brick_release"] == "1.4.4"
    graphs = {g for g in platform_14.store.graph_names() if g.startswith(ONTOLOGY_GRAPH_PREFIX)}
    assert graphs == {s.graph for s in platform_14.sources}
    # 1.5-only classes are unknown here, and 223P's are known.
    assert not platform_14.models.hierarchy.known(BRICK + "Light_Source")
    assert platform_14.models.hierarchy.known("http://data.ashrae.org/standard223#Duct")


def test_switching_version_drops_stale_graphs_and_refreshes_inferred_types(
    data_dir_14: tuple[Path, set[str]], platform_14: Platform
) -> None:
    assert platform_14.startup["ontologies_dropped"] == ["extra-0"]
    assert platform_14.startup["inferred_types_refreshed"] == 1
    # A 1.5 brick:System is a rec:Collection only; in 1.4 it is a brick:Collection and so a
    # brick:Entity as well.
    before, after = data_dir_14[1], _inferred_classes(platform_14.store)
    assert {BRICK + "System", REC + "Collection"} <= before
    assert not {BRICK + "Collection", BRICK + "Entity"} & before
    assert {BRICK + "System", BRICK + "Collection", BRICK + "Entity"} <= after


@pytest.mark.parametrize("path", [p for p in EXAMPLES if p.name not in NOT_BRICK_14], ids=_id)
def test_brick_examples_conform_under_brick_14_with_223p(platform_14: Platform, path: Path) -> None:
    graph = f"urn:twingraph:model:brick14-{path.stem}"
    result = platform_14.models.ingest(graph=graph, data=path.read_bytes(), fmt=RdfFormat.TURTLE)
    assert result.report is not None
    assert result.report.conforms, [r.as_dict() for r in result.report.violations]
    assert result.graph_triples == result.triples_in > 0


def test_lighting_example_needs_brick_15_terms(platform_14: Platform) -> None:
    path = shared_data("brick", "examples", "lighting", "lighting.ttl")
    with pytest.raises(ValidationFailedError) as info:
        platform_14.models.ingest(
            graph="urn:twingraph:model:brick14-lighting",
            data=path.read_bytes(),
            fmt=RdfFormat.TURTLE,
        )
    violations = [r for r in info.value.extra["report"]["results"] if r["severity"] == "Violation"]
    assert {r["focus_node"] for r in violations} == {
        LIGHTING + x for x in ("driver_1", "light_source_1_run_time", "luminaire_1", "open_office")
    }
    # Every one of them is about an instance of a class Brick 1.4.4 lacks.
    assert {r["value"] for r in violations} == {
        LIGHTING + "driver_1_power_cycle_count",
        LIGHTING + "light_source_1",
    }
    assert "urn:twingraph:model:brick14-lighting" not in platform_14.store.graph_names()


@pytest.mark.parametrize("path", EXAMPLES, ids=_id)
def test_which_examples_conform_to_plain_brick_14(plain_14: ShaclValidator, path: Path) -> None:
    from pyoxigraph import parse

    report = plain_14.validate([q.triple for q in parse(path=str(path))])
    assert report.conforms is (path.name not in NOT_PLAIN_BRICK_14), [
        r.as_dict() for r in report.violations
    ]


def test_the_demo_building_is_written_for_brick_15(plain_14: ShaclValidator) -> None:
    """Our generators write Brick 1.5 / REC: equipment brick:hasLocation a rec:Room or
    rec:Space, which Brick 1.4.4 refuses (it wants a brick:Location there)."""
    report = plain_14.validate(generate_building(floors=1, vavs_per_floor=2))
    assert report.violations
    assert {(r.path, r.message) for r in report.violations} == {
        (BRICK + "hasLocation", "must be an instance of brick:Location")
    }


def test_health_names_the_brick_version(platform_14: Platform) -> None:
    app = create_app(platform=platform_14)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        body = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()
    finally:
        server.should_exit = True
        thread.join(10)
    assert body["brick"] == {"version": "1.4", "release": "1.4.4", "extensions": ["223p"]}
    assert any(o["name"] == "223p" for o in body["ontologies"])
