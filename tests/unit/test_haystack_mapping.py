"""Haystack records -> Brick/REC: classes, relationships, units, time-series ids, tags."""

from __future__ import annotations

import json

from pyoxigraph import NamedNode, RdfFormat, Store, Triple

from app.domain.iris import BRICK, RDF_TYPE, REC, REF, UNIT
from app.graph.models import ModelValidator
from app.graph.ontology import default_sources
from app.points import timeseries_uuid
from app.settings import Settings
from ingest.haystack.brick_tags import classify_point, known_classes
from ingest.haystack.job import haystack_to_triples
from ingest.haystack.mapping import EQUIP_RULES, HS, classify_equip
from ingest.haystack.units import HAYSTACK_TO_QUDT
from ingest.haystack.values import MARKER, Number, Record, Ref

BASE = "urn:example:hs/"


def _m(*tags: str) -> Record:
    return dict.fromkeys(tags, MARKER)


def building() -> list[Record]:
    """A site, a floor, a room, an AHU feeding a VAV, a meter and four points."""
    site = Ref("s1", "Site")
    return [
        {"id": site, "dis": "Site", **_m("site"), "area": Number(1000.0, "ft²")},
        {"id": Ref("f1"), "dis": "Floor 1", **_m("space", "floor"), "siteRef": site},
        {"id": Ref("r1"), "dis": "Room 101", **_m("space", "room"), "spaceRef": Ref("f1")},
        {"id": Ref("ahu"), "dis": "AHU-1", **_m("equip", "ahu"), "siteRef": site},
        {
            "id": Ref("vav"),
            "dis": "VAV-1",
            **_m("equip", "vav", "hotWaterHeating"),
            "siteRef": site,
            "spaceRef": Ref("r1"),
            "ahuRef": Ref("ahu"),
            "elecMeterRef": Ref("m2"),
        },
        {
            "id": Ref("m2"),
            "dis": "Sub",
            **_m("equip", "meter", "elec"),
            "siteRef": site,
            "elecMeterRef": Ref("m1"),
        },
        {
            "id": Ref("m1"),
            "dis": "Main",
            **_m("equip", "meter", "elec", "siteMeter"),
            "siteRef": site,
        },
        {
            "id": Ref("p1"),
            "dis": "DAT",
            **_m("point", "his", "air", "discharge", "temp", "sensor"),
            "equipRef": Ref("ahu"),
            "unit": "°F",
        },
        {
            "id": Ref("p2"),
            "dis": "Zone SP",
            **_m("point", "air", "zone", "temp", "sp"),
            "equipRef": Ref("vav"),
            "unit": "°C",
        },
        {
            "id": Ref("p3"),
            "dis": "Odd",
            **_m("point", "his", "sensor"),
            "equipRef": Ref("vav"),
            "unit": "furlongs",
        },
        {
            "id": Ref("p4"),
            "dis": "kW",
            **_m("point", "his", "elec", "power", "sensor"),
            "equipRef": Ref("m1"),
            "unit": "kW",
        },
        {"id": Ref("x1"), "dis": "Region", **_m("region")},
        {"dis": "no id", **_m("equip")},
    ]


def _has(triples: list[Triple], s: str, p: str, o: str) -> bool:
    return Triple(NamedNode(s), NamedNode(p), NamedNode(o)) in triples


def test_classes_and_relationships() -> None:
    result = haystack_to_triples(building(), base=BASE)
    t = result.triples
    assert _has(t, BASE + "s1", RDF_TYPE, REC + "Site")
    assert _has(t, BASE + "s1-building", REC + "isPartOf", BASE + "s1")
    assert _has(t, BASE + "f1", RDF_TYPE, REC + "Level")
    assert _has(t, BASE + "f1", REC + "isPartOf", BASE + "s1-building")
    assert _has(t, BASE + "r1", RDF_TYPE, REC + "Room")
    assert _has(t, BASE + "r1", REC + "isPartOf", BASE + "f1")
    assert _has(t, BASE + "ahu", RDF_TYPE, BRICK + "AHU")
    assert _has(t, BASE + "vav", RDF_TYPE, BRICK + "Variable_Air_Volume_Box_With_Reheat")
    assert _has(t, BASE + "ahu", BRICK + "feeds", BASE + "vav")
    assert _has(t, BASE + "vav", BRICK + "hasLocation", BASE + "r1")
    assert _has(t, BASE + "vav", BRICK + "isMeteredBy", BASE + "m2")
    assert _has(t, BASE + "m2", RDF_TYPE, BRICK + "Electrical_Meter")
    # a building meter meters only the building (Brick's shape): the ref stays in the tags
    assert not _has(t, BASE + "m2", BRICK + "isMeteredBy", BASE + "m1")
    assert _has(t, BASE + "m1", RDF_TYPE, BRICK + "Building_Electrical_Meter")
    assert _has(t, BASE + "m1", BRICK + "meters", BASE + "s1-building")
    assert _has(t, BASE + "p1", RDF_TYPE, BRICK + "Supply_Air_Temperature_Sensor")
    assert _has(t, BASE + "p1", BRICK + "isPointOf", BASE + "ahu")
    assert _has(t, BASE + "ahu", BRICK + "hasPoint", BASE + "p1")
    assert _has(t, BASE + "p1", BRICK + "hasUnit", UNIT + "DEG_F")
    assert _has(t, BASE + "p2", RDF_TYPE, BRICK + "Target_Zone_Air_Temperature_Setpoint")
    assert _has(t, BASE + "p2", BRICK + "hasUnit", UNIT + "DEG_C")
    assert _has(t, BASE + "p4", RDF_TYPE, BRICK + "Electric_Power_Sensor")
    assert result.counts == {"site": 1, "building": 1, "space": 2, "equip": 4, "point": 4}
    assert [u.id for u in result.generic] == ["p3"]
    assert sorted((u.id or "", u.reason) for u in result.unclassified) == [
        ("", "record has no id"),
        ("x1", "not a site, space, equip, point or weather station"),
    ]
    assert result.unknown_units == {"furlongs": 1}
    assert result.points_specific == 3


def test_his_points_get_deterministic_timeseries_ids() -> None:
    first = haystack_to_triples(building(), base=BASE)
    assert first.his_points == {h: timeseries_uuid(h) for h in ("p1", "p3", "p4")}
    ids = {
        t.object.value for t in first.triples if t.predicate == NamedNode(REF + "hasTimeseriesId")
    }
    assert ids == {str(u) for u in first.his_points.values()}
    again = haystack_to_triples(list(reversed(building())), base=BASE)
    assert again.triples == first.triples


def test_original_tags_are_kept_as_hayson() -> None:
    triples = haystack_to_triples(building(), base=BASE).triples
    tags = next(
        t.object.value
        for t in triples
        if t.subject == NamedNode(BASE + "vav") and t.predicate == NamedNode(HS + "tags")
    )
    record = json.loads(tags)
    assert record["ahuRef"] == {"_kind": "ref", "val": "ahu"}
    assert record["hotWaterHeating"] == {"_kind": "marker"}
    assert Triple(NamedNode(BASE + "vav"), NamedNode(HS + "id"), _lit("vav")) in triples


def _lit(value: str) -> object:
    from pyoxigraph import Literal

    return Literal(value)


def test_default_base_names_the_site() -> None:
    result = haystack_to_triples(building())
    assert _has(result.triples, "urn:twingraph:haystack:s1/s1", RDF_TYPE, REC + "Site")


def test_mapped_fixture_validates(validator: ModelValidator) -> None:
    report = validator.validate(haystack_to_triples(building(), base=BASE).triples)
    assert report.conforms, [v.message for v in report.violations]


def test_every_equipment_class_exists_and_validates_bare(validator: ModelValidator) -> None:
    classes = {cls for _, cls in EQUIP_RULES} | {"Equipment", "Weather_Station"}
    assert {BRICK + c for c in classes} <= known_classes()
    triples = [
        Triple(NamedNode(f"urn:example:{c}"), NamedNode(RDF_TYPE), NamedNode(BRICK + c))
        for c in sorted(classes)
    ]
    report = validator.validate(triples)
    assert report.conforms, sorted({v.focus_node for v in report.violations})


def test_rules_pick_specific_before_general() -> None:
    assert classify_equip(frozenset({"equip", "pump", "meter", "hot"})) == "Hot_Water_Pump"
    assert classify_equip(frozenset({"equip", "ahu", "rooftop"})) == "Rooftop_Unit"
    assert classify_equip(frozenset({"equip", "water"})) is None
    assert classify_point(frozenset({"point", "cmd", "damper", "outside", "air"})) == (
        "Damper_Position_Command"
    )
    assert classify_point(frozenset({"point", "sensor"})) == "Sensor"
    assert classify_point(frozenset({"point"})) == "Point"


def test_unit_table_resolves_in_the_loaded_qudt() -> None:
    qudt = next(s for s in default_sources(Settings().qudt_dir) if s.name == "qudt-units")
    store = Store()
    store.bulk_load(path=str(qudt.path), format=RdfFormat.N_QUADS)
    missing = [
        name
        for name in sorted(set(HAYSTACK_TO_QUDT.values()))
        if not store.query(f"ASK {{ GRAPH ?g {{ <{UNIT}{name}> ?p ?o }} }}")
    ]
    assert missing == []
