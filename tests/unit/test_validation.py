"""ShaclValidator: Brick's examples conform, broken models fail where brickschema says, deltas."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from pathlib import Path

import pyoxigraph as ox
import pytest

from app.domain.iris import BRICK, QUDTQK, RDF_TYPE, RDFS, REC, REF, UNIT, XSD
from app.domain.validation import Severity, ValidationReport
from app.graph.ontology import extension_sources
from app.graph.validation import ShaclValidator, ShapesLoadError, default_ontology_files

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
EXAMPLES = sorted((SHARED_DATA / "brick" / "examples").glob("*/*.ttl"))
BUILDINGS = sorted((SHARED_DATA / "brick" / "buildings").glob("*.ttl"))
needs_shared_data = pytest.mark.skipif(
    not EXAMPLES, reason=f"Brick examples not found under {SHARED_DATA} (shared data absent)"
)

EX = "urn:test:"
#: Examples that do not conform to Brick 1.5 (they do to 1.4): focus nodes Brick 1.5 flags.
#: - evse: 1.5 makes brick:Electric_Vehicle_Charging_Hub a rec:Collection, no longer a
#:   brick:Entity, yet brick:isLocationOf (on brick:Location / rec:Architecture) wants an Entity.
#: - lighting: same cause: brick:Lighting_System (a brick:System) is a rec:Collection in 1.5;
#:   Brick's inverse rule turns its brick:hasLocation into open_office brick:isLocationOf it.
#: - solar_array: 1.5 makes brick:PV_Array a rec:Collection that needs >= 1 rec:includes;
#:   the example links panels with brick:isPartOf only.
IMPORTS_S223 = {"duct.ttl"}
NOT_CONFORMING_UNDER_1_5 = {
    "evse.ttl": {"http://example.com/evse#parking_lot"},
    "lighting.ttl": {"http://example.com/lighting#open_office"},
    "solar_array.ttl": {"http://example.com#array1", "http://example.com#array2"},
}


@pytest.fixture(scope="module")
def validator() -> ShaclValidator:
    return ShaclValidator.from_files(default_ontology_files())


@pytest.fixture(scope="module")
def s223_validator() -> ShaclValidator:
    """Brick plus its ASHRAE 223P extension, both shipped by brickschema (duct.ttl imports it):
    the files ``TWINGRAPH_ONTOLOGY_EXTENSIONS=223p`` loads."""
    extras = [s.path for s in extension_sources("223p", "1.5")]
    return ShaclValidator.from_files([*default_ontology_files(), *extras])


# -- test data factories ----------------------------------------------------------------------


def iri(local: str) -> ox.NamedNode:
    return ox.NamedNode(EX + local)


def t(
    s: ox.NamedNode | ox.BlankNode, p: str, o: ox.NamedNode | ox.BlankNode | ox.Literal
) -> ox.Triple:
    return ox.Triple(s, ox.NamedNode(p), o)


def a(s: ox.NamedNode | ox.BlankNode, cls: str) -> ox.Triple:
    return t(s, RDF_TYPE, ox.NamedNode(cls))


def point(owner: ox.NamedNode, local: str, cls: str, unit: str = "DEG_C") -> list[ox.Triple]:
    p, ref = iri(local), ox.BlankNode()
    return [
        a(p, BRICK + cls),
        t(p, BRICK + "hasUnit", ox.NamedNode(UNIT + unit)),
        t(owner, BRICK + "hasPoint", p),
        t(p, BRICK + "isPointOf", owner),
        t(p, REF + "hasExternalReference", ref),
        a(ref, REF + "TimeseriesReference"),
        t(
            ref,
            REF + "hasTimeseriesId",
            ox.Literal(f"00000000-0000-0000-0000-{zlib.crc32(local.encode()):012d}"),
        ),
    ]


def vav(local: str, ahu: ox.NamedNode, room: ox.NamedNode) -> list[ox.Triple]:
    v = iri(local)
    out = [a(v, BRICK + "VAV"), t(ahu, BRICK + "feeds", v), t(v, BRICK + "hasLocation", room)]
    out += point(v, f"{local}.sat", "Supply_Air_Temperature_Sensor")
    out += point(v, f"{local}.zat", "Zone_Air_Temperature_Sensor")
    out += point(v, f"{local}.flow", "Supply_Air_Flow_Sensor", "M3-PER-SEC")
    out += point(v, f"{local}.sp", "Target_Zone_Air_Temperature_Setpoint")
    out += point(v, f"{local}.dmp", "Damper_Position_Command", "PERCENT")
    return out


def small_building(vavs: int = 4) -> list[ox.Triple]:
    """A conforming Brick 1.5 / REC building: one AHU, rooms, zones, VAVs with points."""
    b, lvl, ahu = iri("bldg"), iri("lvl1"), iri("ahu1")
    out = [
        a(b, REC + "Building"),
        a(lvl, REC + "Level"),
        t(lvl, REC + "isPartOf", b),
        a(ahu, BRICK + "AHU"),
        t(ahu, RDFS + "label", ox.Literal("AHU 1")),
    ]
    out += point(ahu, "ahu1.sat", "Supply_Air_Temperature_Sensor")
    for i in range(vavs):
        room, zone = iri(f"room{i}"), iri(f"zone{i}")
        out += [a(room, REC + "Room"), t(room, REC + "isPartOf", lvl)]
        out += [a(zone, REC + "HVACZone"), t(zone, REC + "hasPart", room)]
        out += vav(f"vav{i}", ahu, room)
    return out


def store_of(triples: Sequence[ox.Triple]) -> ox.Store:
    store = ox.Store()
    store.extend(ox.Quad(x.subject, x.predicate, x.object) for x in triples)
    return store


def fetch_from(
    store: ox.Store, calls: list[Sequence[str]] | None = None
) -> Callable[[Sequence[str]], list[ox.Triple]]:
    def fetch(iris: Sequence[str]) -> list[ox.Triple]:
        if calls is not None:
            calls.append(list(iris))
        out: list[ox.Triple] = []
        for value in iris:
            node = ox.NamedNode(value)
            out += [q.triple for q in store.quads_for_pattern(node, None, None)]
            out += [q.triple for q in store.quads_for_pattern(None, None, node)]
        return out

    return fetch


def apply_delta(
    validator: ShaclValidator,
    model: list[ox.Triple],
    added: list[ox.Triple],
    removed: Sequence[ox.Triple] = (),
) -> ValidationReport:
    after = [x for x in model if x not in set(removed)] + added
    return validator.validate_delta(added=added, removed=removed, fetch=fetch_from(store_of(after)))


def violating_foci(report: ValidationReport) -> set[str]:
    return {r.focus_node for r in report.violations}


def read(path: Path) -> list[ox.Triple]:
    return [q.triple for q in ox.parse(path=str(path))]


# -- whole models -----------------------------------------------------------------------------


@needs_shared_data
@pytest.mark.shared_data
@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_brick_examples_conform_to_brick_1_5(
    validator: ShaclValidator, s223_validator: ShaclValidator, path: Path
) -> None:
    # duct.ttl declares owl:imports of the s223 extension: without it, brick:isPointOf may
    # not point at an s223:ConnectionPoint.
    chosen = s223_validator if path.name in IMPORTS_S223 else validator
    report = chosen.validate(read(path))
    expected = NOT_CONFORMING_UNDER_1_5.get(path.name)
    if expected is None:
        assert report.conforms, [r.as_dict() for r in report.violations]
    else:
        assert violating_foci(report) == expected
    assert report.focus_nodes_checked > 0


@needs_shared_data
@pytest.mark.shared_data
@pytest.mark.parametrize("path", BUILDINGS, ids=lambda p: p.name)
def test_real_buildings_validate_without_crashing(validator: ShaclValidator, path: Path) -> None:
    report = validator.validate(read(path))
    assert report.focus_nodes_checked > 10
    assert all(r.focus_node for r in report.results)


def test_synthetic_building_conforms_without_warnings(validator: ShaclValidator) -> None:
    report = validator.validate(small_building())
    assert report.conforms, [r.as_dict() for r in report.violations]
    assert report.results == ()
    assert report.engine.startswith("shifty")


def test_unknown_unit_is_a_violation_on_the_point(validator: ShaclValidator) -> None:
    model = small_building(1)
    model.append(t(iri("vav0.sat"), BRICK + "hasUnit", ox.NamedNode(UNIT + "NOT_A_UNIT")))
    report = validator.validate(model)
    [bad] = report.violations
    assert (bad.focus_node, bad.path, bad.value) == (
        EX + "vav0.sat",
        BRICK + "hasUnit",
        UNIT + "NOT_A_UNIT",
    )


def test_has_point_to_equipment_is_a_violation(validator: ShaclValidator) -> None:
    model = small_building(1) + [
        a(iri("ahu2"), BRICK + "AHU"),
        t(iri("ahu1"), BRICK + "hasPoint", iri("ahu2")),
    ]
    report = validator.validate(model)
    hits = {(r.focus_node, r.path, r.value) for r in report.violations}
    assert (EX + "ahu1", BRICK + "hasPoint", EX + "ahu2") in hits
    assert violating_foci(report) <= {EX + "ahu1", EX + "ahu2"}


def test_wrong_datatype_on_timeseries_id_is_a_violation(validator: ShaclValidator) -> None:
    ref = iri("vav0.sat.ts")
    model = small_building(1) + [
        t(iri("vav0.sat"), REF + "hasExternalReference", ref),
        a(ref, REF + "TimeseriesReference"),
        t(ref, REF + "hasTimeseriesId", ox.Literal("42", datatype=ox.NamedNode(XSD + "integer"))),
    ]
    report = validator.validate(model)
    assert {(r.focus_node, r.path) for r in report.violations} == {
        (EX + "vav0.sat.ts", REF + "hasTimeseriesId")
    }


def test_timeseries_reference_on_equipment_is_a_violation(validator: ShaclValidator) -> None:
    ref = ox.BlankNode()
    model = small_building(1) + [
        t(iri("ahu1"), REF + "hasExternalReference", ref),
        a(ref, REF + "TimeseriesReference"),
        t(ref, REF + "hasTimeseriesId", ox.Literal("x")),
    ]
    assert violating_foci(validator.validate(model)) == {EX + "ahu1"}


def test_units_resolve_from_qudt_and_quantities_from_brick(validator: ShaclValidator) -> None:
    model = small_building(1) + [
        t(iri("vav0.sat"), BRICK + "hasQuantity", ox.NamedNode(BRICK + "Operative_Temperature")),
        t(iri("vav0.flow"), BRICK + "hasUnit", ox.NamedNode(UNIT + "L-PER-SEC")),
    ]
    assert validator.validate(model).conforms
    # Brick 1.5 wants a brick:Quantity here; a bare QUDT quantity kind is not one.
    model.append(t(iri("vav0.zat"), BRICK + "hasQuantity", ox.NamedNode(QUDTQK + "Temperature")))
    assert violating_foci(validator.validate(model)) == {EX + "vav0.zat"}


def test_deprecated_brick_classes_warn_but_conform(validator: ShaclValidator) -> None:
    model = [
        a(iri("site"), BRICK + "Site"),
        a(iri("bldg"), BRICK + "Building"),
        a(iri("room"), BRICK + "Room"),
    ]
    model += [a(iri("floor"), BRICK + "Floor"), a(iri("zone"), BRICK + "HVAC_Zone")]
    report = validator.validate(model)
    assert report.conforms
    warned = {
        r.focus_node
        for r in report.warnings
        if r.severity is Severity.WARNING and "deprecated" in r.message
    }
    assert warned == {EX + x for x in ("site", "bldg", "room", "floor", "zone")}


@pytest.mark.slow
def test_brickschema_flags_the_same_focus_nodes(validator: ShaclValidator) -> None:
    """Ground truth: brickschema (Brick loaded, its default engine) flags every node we flag."""
    brickschema = pytest.importorskip("brickschema")
    import rdflib

    ref = iri("vav0.sat.ts")
    bnode = ox.BlankNode()
    model = small_building(1) + [
        t(iri("vav0.zat"), BRICK + "hasUnit", ox.NamedNode(UNIT + "NOT_A_UNIT")),
        a(iri("ahu2"), BRICK + "AHU"),
        t(iri("ahu1"), BRICK + "hasPoint", iri("ahu2")),
        t(iri("vav0.sat"), REF + "hasExternalReference", ref),
        a(ref, REF + "TimeseriesReference"),
        t(ref, REF + "hasTimeseriesId", ox.Literal("42", datatype=ox.NamedNode(XSD + "integer"))),
        t(iri("vav0"), REF + "hasExternalReference", bnode),
        a(bnode, REF + "TimeseriesReference"),
        t(bnode, REF + "hasTimeseriesId", ox.Literal("x")),
    ]
    ours = violating_foci(validator.validate(model))
    assert ours == {EX + "vav0.zat", EX + "ahu1", EX + "vav0.sat.ts", EX + "vav0"}

    g = brickschema.Graph(load_brick=True)
    g.parse(data=ox.serialize(model, format=ox.RdfFormat.N_TRIPLES), format="nt")
    conforms, report_graph, _ = g.validate()
    assert not conforms
    sh = rdflib.Namespace("http://www.w3.org/ns/shacl#")
    theirs = {str(f) for f in report_graph.objects(None, sh.focusNode)}
    assert ours <= theirs


# -- deltas -----------------------------------------------------------------------------------


def test_good_delta_passes_and_checks_only_the_neighbourhood(validator: ShaclValidator) -> None:
    model = small_building(6)
    added = [a(iri("roomX"), REC + "Room"), *vav("vavX", iri("ahu1"), iri("roomX"))]
    calls: list[Sequence[str]] = []
    after = store_of(model + added)
    report = validator.validate_delta(added=added, removed=(), fetch=fetch_from(after, calls))
    assert report.conforms, [r.as_dict() for r in report.violations]
    assert 0 < report.focus_nodes_checked < len({x.subject for x in model + added})
    assert len(calls) == 2
    assert UNIT + "DEG_C" not in calls[0]


def test_delta_introducing_bad_unit_and_bad_point_fails(validator: ShaclValidator) -> None:
    model = small_building(3)
    added = [
        t(iri("vav1.sat"), BRICK + "hasUnit", ox.NamedNode(UNIT + "NOT_A_UNIT")),
        a(iri("ahuB"), BRICK + "AHU"),
        t(iri("vav2"), BRICK + "hasPoint", iri("ahuB")),
    ]
    report = apply_delta(validator, model, added)
    hits = {(r.focus_node, r.path, r.value) for r in report.violations}
    assert (EX + "vav1.sat", BRICK + "hasUnit", UNIT + "NOT_A_UNIT") in hits
    assert (EX + "vav2", BRICK + "hasPoint", EX + "ahuB") in hits


def test_delta_removing_a_point_type_flags_its_unchanged_owner(validator: ShaclValidator) -> None:
    """The owner is not in the delta, but its hasPoint now points at a non-Point."""
    model = small_building(2)
    removed = [a(iri("vav1.zat"), BRICK + "Zone_Air_Temperature_Sensor")]
    added = [a(iri("vav1.zat"), BRICK + "AHU")]
    report = apply_delta(validator, model, added, removed)
    assert EX + "vav1" in violating_foci(report)


def test_delta_changing_a_unit_on_an_existing_point_passes(validator: ShaclValidator) -> None:
    model = small_building(2)
    removed = [t(iri("vav0.sat"), BRICK + "hasUnit", ox.NamedNode(UNIT + "DEG_C"))]
    added = [t(iri("vav0.sat"), BRICK + "hasUnit", ox.NamedNode(UNIT + "DEG_F"))]
    report = apply_delta(validator, model, added, removed)
    assert report.conforms, [r.as_dict() for r in report.violations]
    assert report.focus_nodes_checked >= 1


def test_delta_deleting_a_node_entirely_passes(validator: ShaclValidator) -> None:
    model = small_building(2)
    removed = [
        x
        for x in model
        if EX + "vav1.flow"
        in (
            x.subject.value if isinstance(x.subject, ox.NamedNode) else "",
            x.object.value if isinstance(x.object, ox.NamedNode) else "",
        )
    ]
    assert removed
    report = apply_delta(validator, model, [], removed)
    assert report.conforms


def test_empty_delta_checks_nothing(validator: ShaclValidator) -> None:
    report = validator.validate_delta(added=(), removed=(), fetch=lambda iris: [])
    assert report.conforms and report.focus_nodes_checked == 0


# -- ontology look-ups and errors -------------------------------------------------------------


def test_superclasses_is_reflexive_and_transitive(validator: ShaclValidator) -> None:
    sups = validator.superclasses(BRICK + "Supply_Air_Temperature_Sensor")
    assert {
        BRICK + "Supply_Air_Temperature_Sensor",
        BRICK + "Temperature_Sensor",
        BRICK + "Sensor",
        BRICK + "Point",
    } <= sups
    assert REC + "Space" in validator.superclasses(REC + "Room")
    assert validator.superclasses(EX + "Nope") == frozenset({EX + "Nope"})


def test_known_class(validator: ShaclValidator) -> None:
    assert validator.known_class(BRICK + "VAV")
    assert validator.known_class(REC + "Building")
    assert validator.known_class("http://qudt.org/schema/qudt/Unit")
    assert not validator.known_class(BRICK + "Not_A_Class")
    assert not validator.known_class(UNIT + "DEG_C")


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_broken_shapes_file_raises_a_clear_error(tmp_path: Path) -> None:
    bad = _write(
        tmp_path,
        "bad.ttl",
        "@prefix sh: <http://www.w3.org/ns/shacl#> .\n<urn:s> a sh:NodeShape ;; oops",
    )
    with pytest.raises(ShapesLoadError, match="bad.ttl"):
        ShaclValidator.from_files([bad])


def test_missing_or_shapeless_files_raise(tmp_path: Path) -> None:
    with pytest.raises(ShapesLoadError, match="cannot read"):
        ShaclValidator.from_files([tmp_path / "missing.ttl"])
    plain = _write(tmp_path, "plain.ttl", "<urn:a> <urn:b> <urn:c> .\n")
    with pytest.raises(ShapesLoadError, match="no SHACL shapes"):
        ShaclValidator.from_files([plain])


def test_extra_shapes_are_enforced(tmp_path: Path, validator: ShaclValidator) -> None:
    extra = _write(
        tmp_path,
        "extra.ttl",
        "@prefix sh: <http://www.w3.org/ns/shacl#> .\n"
        "@prefix rdfs: <http://www.w3.org/2000/01/rdf-schema#> .\n"
        "@prefix brick: <https://brickschema.org/schema/Brick#> .\n"
        "<urn:shape:VavLabel> a sh:NodeShape ; sh:targetClass brick:VAV ;\n"
        "  sh:property [ sh:path rdfs:label ; sh:minCount 1 ] .\n",
    )
    strict = ShaclValidator.from_files(default_ontology_files(), extra_shapes=[extra])
    report = strict.validate(small_building(1))
    assert violating_foci(report) == {EX + "vav0"}
    assert {r.shape for r in report.violations} == {"urn:shape:VavLabel"}


def test_delta_with_a_bad_blank_node_reference_flags_the_blank_node(
    validator: ShaclValidator,
) -> None:
    ref = ox.BlankNode()
    added = [
        t(iri("vav0.sat"), REF + "hasExternalReference", ref),
        a(ref, REF + "TimeseriesReference"),
        t(ref, REF + "hasTimeseriesId", ox.Literal("42", datatype=ox.NamedNode(XSD + "integer"))),
    ]
    report = apply_delta(validator, small_building(2), added)
    [bad] = report.violations
    assert (bad.focus_node, bad.path) == (f"_:{ref.value}", REF + "hasTimeseriesId")
