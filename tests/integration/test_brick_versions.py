"""Brick's own examples (../shared/data) under each Brick configuration a user can choose.

Brick's CI validates each example with the Brick it builds from the same commit, plus its
imports; the examples declare ``owl:imports <https://brickschema.org/schema/1.4/Brick>``
(``lighting.ttl`` too, though it uses terms first released in 1.5). Configurations here:

- Brick 1.4 (release 1.4.4) with 223P (``TWINGRAPH_BRICK_VERSION=1.4``,
  ``TWINGRAPH_ONTOLOGY_EXTENSIONS=223p``, which ``connections/duct.ttl`` imports): 24 of 25;
- Brick 1.5 (release 1.5.0) with 223P and our errata (the default ``TWINGRAPH_BRICK_ERRATA``,
  ``ontologies/errata/brick-1.5.0.ttl``): 24 of 25;
- Brick 1.5.0 as released, with 223P (``TWINGRAPH_BRICK_ERRATA=false``): 22 of 25.

No released Brick, with or without upstream's later fixes, takes all 25 (see
:data:`VIOLATIONS`). Opening a platform and preparing its shapes costs seconds, so there is
one per configuration, per module.
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
    ERRATA_DIR,
    ClassHierarchy,
    OntologySource,
    brick_path,
    default_sources,
    ensure_loaded,
    errata_path,
    release_of,
)
from app.graph.store import GraphStore
from app.graph.validation import ShaclValidator
from app.main import create_app
from app.platform import Platform, build_validator, open_platform
from app.settings import Settings
from app.telemetry.ports import free_port
from ingest.demo_building import generate_building
from tests.conftest import SHARED_DATA, shared_data

EXAMPLES = sorted(SHARED_DATA.glob("brick/examples/*/*.ttl")) if SHARED_DATA.is_dir() else []
LIGHTING = "http://example.com/lighting#"
EVSE = "http://example.com/evse#"
SOLAR = "http://example.com#"
REC_INCLUDES = REC + "includes"
IS_LOCATION_OF = BRICK + "isLocationOf"
SWITCHED = "urn:twingraph:model:ingested-under-1.5"
SYSTEM = NamedNode("urn:test:lighting-system")
RDF_TYPE_NODE = NamedNode(RDF_TYPE)
LIGHTING_SYSTEM = NamedNode(BRICK + "Lighting_System")

#: Examples Brick 1.4 (+ 223P) rejects: lighting.ttl uses terms that first appear in Brick
#: 1.5 (brick:Light_Source, brick:Power_Cycle_Count_Sensor, brick:expectedLifetime,
#: brick:ratedApparentPower, ...), so under 1.4.4 its light source is no Equipment and its
#: cycle counter no Point. brickschema's own Graph.validate() with Brick 1.4 and QUDT loaded
#: flags the same four focus nodes. It conforms under Brick 1.5 with our errata only (1.5.0
#: as released rejects its brick:Lighting_System location, see VIOLATIONS).
NOT_BRICK_14 = {"lighting.ttl"}
#: Without 223P, Brick 1.4 rejects two more: duct.ttl (brick:isPointOf an
#: s223:OutletConnectionPoint: the 223P bridge replaces bsh:isPointOfShape by one that admits
#: connection points) and room_application.ttl (brick:isPointOf a rec:Zone, a
#: rec:Architecture that 1.4.4's bsh:isPointOfShape does not admit; 1.5's does, and so does
#: the 223P bridge's replacement shape).
NOT_PLAIN_BRICK_14 = NOT_BRICK_14 | {"duct.ttl", "room_application.ttl"}

#: (focus node, path) of every violation, per Brick 1.5 configuration and example; examples
#: not named conform. All with 223P.
#:
#: - evse.ttl, lighting.ttl, Brick 1.5.0 as released: a brick:Electric_Vehicle_Charging_Hub
#:   and (through Brick's inverse rule on brick:hasLocation) a brick:Lighting_System are the
#:   object of brick:isLocationOf, whose shape wants a brick:Entity; 1.5.0 re-parented both
#:   under rec:Collection only. Upstream restored brick:Collection (a brick:Entity) above
#:   Brick's collection classes after the release (BrickSchema/Brick PR #803), which is what
#:   our errata do; with them both conform (and lighting.ttl needs 1.5's terms, so 1.5 plus
#:   errata is the only configuration it conforms under).
#: - solar_array.ttl, under every 1.5 configuration: brick:PV_Array wants >= 1 rec:includes.
#:   The example ties panels to arrays with brick:isPartOf only; 1.4.4 derived rec:includes
#:   from brick:hasPart for every brick:Collection, 1.5.0 only for brick:System/brick:Loop
#:   (bsh:SystemLoopLegacyHasPartIncludes) and documents rec:includes as collection
#:   membership (BrickSchema/docs PR #28). No upstream fix is known, so it conforms under 1.4
#:   only: a 1.4 model, not a Brick 1.5 bug.
SOLAR_ARRAYS: set[tuple[str, str | None]] = {
    (SOLAR + "array1", REC_INCLUDES),
    (SOLAR + "array2", REC_INCLUDES),
}
VIOLATIONS: dict[str, dict[str, set[tuple[str, str | None]]]] = {
    "1.5 + errata": {"solar_array.ttl": SOLAR_ARRAYS},
    "1.5.0 as released": {
        "evse.ttl": {(EVSE + "parking_lot", IS_LOCATION_OF)},
        "lighting.ttl": {(LIGHTING + "open_office", IS_LOCATION_OF)},
        "solar_array.ttl": SOLAR_ARRAYS,
    },
}


def _id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


def _left_by_brick_15(data_dir: Path) -> set[str]:
    """A store as a Brick 1.5 platform (errata off) with one more ontology file left it:
    Brick 1.5.0, an ``extra-0`` graph, and a model with the inferred types 1.5.0 gives it.
    Returns those types."""
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


@pytest.fixture(scope="module")
def platform_15(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """The default Brick (1.5, errata on) with 223P."""
    shared_data()
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("brick-1.5"),
        brick_version="1.5",
        ontology_extensions=["223p"],
    )
    platform = open_platform(settings, telemetry=False)
    yield platform
    platform.close()


Found = dict[str, set[tuple[str, str | None]]]


@pytest.fixture(scope="module")
def released_15() -> Found:
    """Violations per example under Brick 1.5.0 exactly as released (errata off), with 223P,
    QUDT and our shapes, as (focus node, path).

    One engine call for all examples (each call has a fixed cost of ~0.5 s, the models are
    tiny): each example's own nodes (its subjects) are renamed apart first, because examples
    reuse IRIs (``http://example.com#floor1`` ...), and renamed back in the results. Renaming
    nodes no shape names cannot change what SHACL reports.
    """
    from pyoxigraph import parse

    assert len({p.name for p in EXAMPLES}) == len(EXAMPLES)
    settings = Settings(brick_errata=False)
    sources = default_sources(settings.qudt_dir, extensions=["223p"], errata=False)
    validator = build_validator(sources, settings.shapes_dir)
    triples: list[Triple] = []
    owner: dict[str, str] = {}  # focus node as reported -> example
    original: dict[str, str] = {}  # renamed IRI -> IRI in the example
    for i, path in enumerate(EXAMPLES):
        quads = list(parse(path=str(path)))
        own = {q.subject.value for q in quads if isinstance(q.subject, NamedNode)}
        renamed = {iri: f"urn:twingraph:test:{i}:{iri}" for iri in own}
        for q in quads:
            subject, obj = q.subject, q.object
            if isinstance(subject, NamedNode) and subject.value in renamed:
                subject = NamedNode(renamed[subject.value])
            if isinstance(obj, NamedNode) and obj.value in renamed:
                obj = NamedNode(renamed[obj.value])
            triples.append(Triple(subject, q.predicate, obj))
            key = subject.value if isinstance(subject, NamedNode) else str(subject)
            owner[key] = path.name
        original.update({new: old for old, new in renamed.items()})
    report = validator.validate(triples)
    found: Found = {p.name: set() for p in EXAMPLES}
    for r in report.violations:
        assert r.focus_node in owner, f"focus node {r.focus_node} is no example's subject"
        found[owner[r.focus_node]].add((original.get(r.focus_node, r.focus_node), r.path))
    return found


def _ingest_violations(platform: Platform, path: Path) -> set[tuple[str, str | None]]:
    """Ingest an example; the (focus node, path) of each violation if it was refused."""
    graph = f"urn:twingraph:model:example-{path.parent.name}-{path.stem}"
    try:
        result = platform.models.ingest(graph=graph, data=path.read_bytes(), fmt=RdfFormat.TURTLE)
    except ValidationFailedError as exc:
        assert graph not in platform.store.graph_names()
        results = exc.extra["report"]["results"]
        return {(r["focus_node"], r["path"]) for r in results if r["severity"] == "Violation"}
    assert result.report is not None and result.report.conforms
    assert result.graph_triples == result.triples_in > 0
    return set()


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
    # A brick:System of 1.5.0 as released is a rec:Collection only; in 1.4 it is a
    # brick:Collection and so a brick:Entity as well (as with our 1.5.0 errata).
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


# -- Brick 1.5: as released, and with our errata ------------------------------------------------


def test_errata_are_keyed_by_the_release_brickschema_ships() -> None:
    assert release_of(brick_path("1.5")) == "1.5.0"
    assert release_of(brick_path("1.4")) == "1.4.4"
    assert errata_path("1.5") == ERRATA_DIR / "brick-1.5.0.ttl"
    assert errata_path("1.4") is None  # nothing to patch in 1.4.4
    qudt = Settings().qudt_dir
    names = [s.name for s in default_sources(qudt, extensions=["223p"])]
    assert names[:2] == ["brick", "brick-errata"]  # loaded right after Brick
    assert "brick-errata" not in {s.name for s in default_sources(qudt, errata=False)}
    assert "brick-errata" not in {s.name for s in default_sources(qudt, brick_version="1.4")}


def test_errata_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().brick_errata is True
    monkeypatch.setenv("TWINGRAPH_BRICK_ERRATA", "false")
    assert Settings().brick_errata is False


def test_the_default_platform_loads_the_errata_and_its_hierarchy(platform_15: Platform) -> None:
    assert [s.name for s in platform_15.sources][:2] == ["brick", "brick-errata"]
    assert platform_15.startup["brick_release"] == "1.5.0"
    assert "urn:twingraph:ontology:brick-errata" in platform_15.store.graph_names()
    hierarchy = platform_15.models.hierarchy
    # 1.5.0 alone makes these rec:Collections only (see _left_by_brick_15); the errata put
    # brick:Collection, and so brick:Entity, back above them.
    for cls in ("Lighting_System", "Electric_Vehicle_Charging_Hub", "PV_Array", "Loop"):
        supers = hierarchy.superclasses(BRICK + cls)
        assert {REC + "Collection", BRICK + "Collection", BRICK + "Entity"} <= supers, cls
    # Classes new in 1.5 are left as released.
    assert BRICK + "Entity" not in hierarchy.superclasses(BRICK + "Automation_Collection")


@pytest.mark.parametrize("path", EXAMPLES, ids=_id)
def test_brick_examples_under_brick_15_with_errata(platform_15: Platform, path: Path) -> None:
    expected = VIOLATIONS["1.5 + errata"].get(path.name, set())
    assert _ingest_violations(platform_15, path) == expected


@pytest.mark.parametrize("path", EXAMPLES, ids=_id)
def test_brick_examples_under_brick_15_as_released(released_15: Found, path: Path) -> None:
    assert released_15[path.name] == VIOLATIONS["1.5.0 as released"].get(path.name, set())


def test_every_example_conforms_under_some_configuration_but_none_takes_all() -> None:
    """The tally the README states; the tests above check each entry against the engine."""
    names = {p.name for p in EXAMPLES}
    if not names:
        shared_data()
    failing = {
        "1.4 + 223p": NOT_BRICK_14,
        **{config: set(by_example) for config, by_example in VIOLATIONS.items()},
    }
    assert {config: len(names - bad) for config, bad in failing.items()} == {
        "1.4 + 223p": 24,
        "1.5 + errata": 24,
        "1.5.0 as released": 22,
    }
    assert set.intersection(*failing.values()) == set()
    assert all(bad for bad in failing.values())
