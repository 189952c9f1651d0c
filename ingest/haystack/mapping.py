"""Haystack records -> Brick 1.5 / RealEstateCore triples.

Contract:

- ``site`` -> ``rec:Site`` plus one ``rec:Building`` (``<site IRI>-building``) that is part
  of it: a Haystack site is "a single building with its own street address", while REC
  separates the land from the building. Equipment without a ``spaceRef`` is located in it.
- ``space`` / ``floor`` / ``room`` -> ``rec:Level`` (floor), ``rec:Room`` (room), else
  ``rec:Space``; each is ``rec:isPartOf`` its ``spaceRef``/``floorRef`` or the building.
- ``equip`` -> a Brick equipment class by the rules in ``EQUIP_RULES`` (``brick:Equipment``
  when none applies, reported as generic); ``equipRef`` -> ``brick:isPartOf``;
  ``ahuRef``/``airRef`` and the plant refs (``chilledWaterRef``, ``hotWaterRef``, ...) ->
  the referenced equipment ``brick:feeds`` this one; ``elecMeterRef`` -> ``brick:isMeteredBy``;
  a ``siteMeter`` ``brick:meters`` the building.
- ``point`` -> the most specific Brick point class for its markers (``brick_tags``);
  ``equipRef`` -> ``brick:isPointOf`` + ``brick:hasPoint``; ``unit`` -> ``brick:hasUnit``;
  ``his`` -> ``ref:hasExternalReference [ a ref:TimeseriesReference ; ref:hasTimeseriesId
  "<uuid>" ]`` with the UUIDv5 of the Haystack id (``app.points.timeseries_uuid``).
- ``weatherStation`` (Haystack 4) / ``weather`` (Haystack 3) -> ``brick:Weather_Station``.
- Every mapped entity keeps ``hs:id`` (its Haystack id) and ``hs:tags`` (the whole record as
  Hayson JSON, keys sorted) in ``urn:twingraph:haystack#``: a round trip can restore ids,
  tags and refs. Relationships are emitted only to entities present and mapped, so the
  model never points at untyped nodes.

The output is deterministic: records are taken in id order and blank nodes are named after
the time-series UUID, so mapping the same records twice gives the same triples.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import quote

from pyoxigraph import BlankNode, Literal, NamedNode, Triple

from app.domain.iris import BRICK, RDF_TYPE, RDFS, REC, REF
from app.points import timeseries_uuid
from ingest.haystack.brick_tags import GENERIC_POINTS, classify_point
from ingest.haystack.units import qudt_unit
from ingest.haystack.values import Marker, Number, Record, Ref, markers
from ingest.haystack.writers import hayson_value

HS = "urn:twingraph:haystack#"
DEFAULT_BASE = "urn:twingraph:haystack:"

_A = NamedNode(RDF_TYPE)
_LABEL = NamedNode(RDFS + "label")
_HS_ID = NamedNode(HS + "id")
_HS_TAGS = NamedNode(HS + "tags")

#: (required markers, Brick class): the first rule whose markers are all present wins, so
#: specific rules come before general ones (a pump tagged ``meter`` is still a pump).
EQUIP_RULES: tuple[tuple[frozenset[str], str], ...] = tuple(
    (frozenset(tags.split()), cls)
    for tags, cls in (
        ("ahu rooftop", "Rooftop_Unit"),
        ("rtu", "Rooftop_Unit"),
        ("ahu", "AHU"),
        ("mau", "Makeup_Air_Unit"),
        ("vav hotWaterHeating", "Variable_Air_Volume_Box_With_Reheat"),
        ("vav elecHeating", "Variable_Air_Volume_Box_With_Reheat"),
        ("vav", "VAV"),
        ("fcu", "Fan_Coil_Unit"),
        ("chiller waterCooling", "Water_Cooled_Chiller"),
        ("chiller", "Chiller"),
        ("boiler", "Boiler"),
        ("coolingTower", "Cooling_Tower"),
        ("heatExchanger", "Heat_Exchanger"),
        ("pump chilled", "Chilled_Water_Pump"),
        ("pump hot", "Hot_Water_Pump"),
        ("pump condenser", "Condenser_Water_Pump"),
        ("pump water", "Water_Pump"),
        ("pump", "Pump"),
        ("fan return", "Return_Fan"),
        ("fan exhaust", "Exhaust_Fan"),
        ("fan discharge", "Supply_Fan"),
        ("fan supply", "Supply_Fan"),
        ("fan", "Fan"),
        ("meter elec siteMeter", "Building_Electrical_Meter"),
        ("meter elec", "Electrical_Meter"),
        # Brick 1.5's Gas_Meter, Building_Gas_Meter and Water_Meter fail Brick's own shapes
        # (even a bare instance), so gas and water meters are plain meters; the gas/water
        # markers stay in hs:tags.
        ("meter", "Meter"),
        # Plants and loops carry points in Haystack; Brick's System/Loop classes cannot
        # (isPointOf wants Equipment or a Location), so they stay generic brick:Equipment.
        ("lightsGroup", "Lighting"),
        ("lights", "Lighting"),
        ("thermostat", "Thermostat"),
        ("vfd", "Variable_Frequency_Drive"),
        ("damper", "Damper"),
        ("valve", "Valve"),
        ("tank", "Tank"),
    )
)
#: Ref tags whose target feeds the entity carrying them.
FED_BY_REFS = (
    "ahuRef",
    "airRef",
    "chilledWaterRef",
    "hotWaterRef",
    "steamRef",
    "condenserWaterRef",
    "coolingTowerRef",
)


@dataclass(frozen=True, slots=True)
class Unclassified:
    id: str | None
    dis: str | None
    reason: str


@dataclass(slots=True)
class MappingResult:
    triples: list[Triple]
    #: Mapped entities per kind: site, building, space, equip, point, weather.
    counts: Counter[str] = field(default_factory=Counter)
    #: Entities typed only generically (``brick:Point``/``Sensor``/... or ``brick:Equipment``).
    generic: list[Unclassified] = field(default_factory=list)
    #: Entities not mapped at all, with the reason.
    unclassified: list[Unclassified] = field(default_factory=list)
    #: Haystack id -> time-series UUID, for every ``his`` point.
    his_points: dict[str, uuid.UUID] = field(default_factory=dict)
    #: Haystack unit symbols with no QUDT equivalent, and how often they occurred.
    unknown_units: Counter[str] = field(default_factory=Counter)
    #: Brick class local name -> count.
    classes: Counter[str] = field(default_factory=Counter)

    @property
    def points_total(self) -> int:
        return self.counts["point"]

    @property
    def points_specific(self) -> int:
        return sum(
            n
            for c, n in self.classes.items()
            if c.startswith("point:") and c[6:] not in GENERIC_POINTS
        )

    @property
    def point_share(self) -> float:
        """Share of points typed more specifically than Point/Sensor/Setpoint/Command/Status."""
        return self.points_specific / self.points_total if self.points_total else 0.0

    def summary(self) -> dict[str, object]:
        return {
            "triples": len(self.triples),
            "mapped": dict(sorted(self.counts.items())),
            "points_specific": self.points_specific,
            "point_share": round(self.point_share, 4),
            "generic": len(self.generic),
            "unclassified": [
                {"id": u.id, "dis": u.dis, "reason": u.reason} for u in self.unclassified
            ],
            "his_points": len(self.his_points),
            "unknown_units": dict(self.unknown_units),
        }


def classify_equip(tags: frozenset[str]) -> str | None:
    for required, cls in EQUIP_RULES:
        if required <= tags:
            return cls
    return None


def kind_of(record: Record) -> str | None:
    tags = markers(record)
    if "point" in tags:
        return "point"
    if "equip" in tags:
        return "equip"
    if "site" in tags:
        return "site"
    if tags & {"space", "floor", "room"}:
        return "space"
    if tags & {"weatherStation", "weather"}:
        return "weather"
    return None


def _base_for(records: Sequence[Record], base: str | None) -> str:
    if base:
        return base if base.endswith(("/", "#", ":")) else base + "/"
    site = next((r["id"] for r in records if "site" in r and isinstance(r.get("id"), Ref)), None)
    name = site.id if isinstance(site, Ref) else "unknown-site"
    return f"{DEFAULT_BASE}{quote(name, safe='-._~')}/"


def _label(record: Record) -> str | None:
    for key in ("dis", "navName", "name"):
        val = record.get(key)
        if isinstance(val, str) and val:
            return val
    rid = record.get("id")
    return rid.dis if isinstance(rid, Ref) and rid.dis else None


def tags_json(record: Record) -> str:
    return json.dumps(
        {k: hayson_value(v) for k, v in record.items()},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )


class _Mapper:
    def __init__(self, records: Iterable[Record], base: str | None) -> None:
        with_id = [r for r in records if isinstance(r.get("id"), Ref)]
        self.records = sorted(with_id, key=lambda r: r["id"].id)  # type: ignore[union-attr]
        self.base = _base_for(self.records, base)
        self.result = MappingResult(triples=[])
        self.kinds: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        for r in records:
            if not isinstance(r.get("id"), Ref):
                self.result.unclassified.append(Unclassified(None, _label(r), "record has no id"))

    def iri(self, hid: str) -> NamedNode:
        return NamedNode(self.base + quote(hid, safe="-._~:"))

    def building(self, site_id: str) -> NamedNode:
        return NamedNode(self.iri(site_id).value + "-building")

    def add(self, s: NamedNode | BlankNode, p: str, o: NamedNode | BlankNode | Literal) -> None:
        self.result.triples.append(Triple(s, NamedNode(p), o))

    def ref(self, record: Record, tag: str, *kinds: str) -> str | None:
        val = record.get(tag)
        if isinstance(val, Ref) and self.kinds.get(val.id) in kinds:
            return val.id
        return None

    def run(self) -> MappingResult:
        res = self.result
        for r in self.records:
            hid = r["id"].id  # type: ignore[union-attr]
            kind = kind_of(r)
            if kind is None:
                res.unclassified.append(
                    Unclassified(
                        hid, _label(r), "not a site, space, equip, point or weather station"
                    )
                )
                continue
            self.kinds[hid] = kind
            tags = markers(r)
            if kind == "equip":
                cls = classify_equip(tags)
                if cls is None:
                    res.generic.append(Unclassified(hid, _label(r), "no equipment rule matched"))
                self.classes[hid] = cls or "Equipment"
            elif kind == "point":
                cls = classify_point(tags)
                if cls in GENERIC_POINTS:
                    res.generic.append(Unclassified(hid, _label(r), f"only typed as brick:{cls}"))
                self.classes[hid] = cls
        for r in self.records:
            hid = r["id"].id  # type: ignore[union-attr]
            kind = self.kinds.get(hid)
            if kind is None:
                continue
            node = self.iri(hid)
            getattr(self, f"_{kind}")(hid, node, r)
            res.counts[kind] += 1
            label = _label(r)
            if label:
                self.add(node, RDFS + "label", Literal(label))
            self.add(node, HS + "id", Literal(hid))
            self.add(node, HS + "tags", Literal(tags_json(r)))
        return res

    def _site(self, hid: str, node: NamedNode, r: Record) -> None:
        building = self.building(hid)
        self.add(node, RDF_TYPE, NamedNode(REC + "Site"))
        self.add(node, REC + "hasPart", building)
        self.add(building, RDF_TYPE, NamedNode(REC + "Building"))
        self.add(building, REC + "isPartOf", node)
        label = _label(r)
        if label:
            self.add(building, RDFS + "label", Literal(label))
        self.result.counts["building"] += 1
        self.result.classes["site:Site"] += 1

    def _container(self, r: Record) -> NamedNode | None:
        """Where an entity is: its space, else its site's building."""
        for tag in ("spaceRef", "floorRef", "roomRef"):
            if target := self.ref(r, tag, "space"):
                return self.iri(target)
        if site := self.ref(r, "siteRef", "site"):
            return self.building(site)
        return None

    def _space(self, hid: str, node: NamedNode, r: Record) -> None:
        tags = markers(r)
        cls = "Level" if "floor" in tags else "Room" if "room" in tags else "Space"
        self.add(node, RDF_TYPE, NamedNode(REC + cls))
        self.result.classes[f"space:{cls}"] += 1
        parent = self._container(r)
        if parent is not None and parent != node:
            self.add(node, REC + "isPartOf", parent)
            self.add(parent, REC + "hasPart", node)

    def _weather(self, hid: str, node: NamedNode, r: Record) -> None:
        self.add(node, RDF_TYPE, NamedNode(BRICK + "Weather_Station"))
        self.result.classes["weather:Weather_Station"] += 1

    def _equip(self, hid: str, node: NamedNode, r: Record) -> None:
        cls = self.classes[hid]
        self.add(node, RDF_TYPE, NamedNode(BRICK + cls))
        self.result.classes[f"equip:{cls}"] += 1
        if parent := self.ref(r, "equipRef", "equip"):
            self.add(node, BRICK + "isPartOf", self.iri(parent))
            self.add(self.iri(parent), BRICK + "hasPart", node)
        location = self._container(r)
        if location is not None:
            self.add(node, BRICK + "hasLocation", location)
        for tag in FED_BY_REFS:
            if (source := self.ref(r, tag, "equip")) and source != hid:
                self.add(self.iri(source), BRICK + "feeds", node)
        meter = self.ref(r, "elecMeterRef", "equip")
        # A building meter may only meter the building (Brick's shape): equipment on the
        # site meter keeps the ref in its tags only.
        if meter and meter != hid and not self.classes[meter].startswith("Building_"):
            self.add(node, BRICK + "isMeteredBy", self.iri(meter))
        tags = markers(r)
        if "siteMeter" in tags and "meter" in tags and (site := self.ref(r, "siteRef", "site")):
            self.add(node, BRICK + "meters", self.building(site))
        if (parent_meter := self.ref(r, "submeterOf", "equip")) and parent_meter != hid:
            self.add(node, BRICK + "isSubMeterOf", self.iri(parent_meter))

    def _point(self, hid: str, node: NamedNode, r: Record) -> None:
        cls = self.classes[hid]
        self.add(node, RDF_TYPE, NamedNode(BRICK + cls))
        self.result.classes[f"point:{cls}"] += 1
        owner = (
            self.ref(r, "equipRef", "equip")
            or self.ref(r, "weatherStationRef", "weather")
            or self.ref(r, "weatherRef", "weather")
            or self.ref(r, "spaceRef", "space")
        )
        if owner is not None:
            self.add(node, BRICK + "isPointOf", self.iri(owner))
            self.add(self.iri(owner), BRICK + "hasPoint", node)
        unit = r.get("unit")
        if isinstance(unit, str) and unit:
            qudt = qudt_unit(unit)
            if qudt is None:
                self.result.unknown_units[unit] += 1
            else:
                self.add(node, BRICK + "hasUnit", NamedNode(qudt))
        if isinstance(r.get("his"), Marker):
            ts = timeseries_uuid(hid)
            self.result.his_points[hid] = ts
            ext = BlankNode(f"ts{ts.hex}")
            self.add(node, REF + "hasExternalReference", ext)
            self.add(ext, RDF_TYPE, NamedNode(REF + "TimeseriesReference"))
            self.add(ext, REF + "hasTimeseriesId", Literal(str(ts)))


def map_records(records: Iterable[Record], *, base: str | None = None) -> MappingResult:
    return _Mapper(records, base).run()


__all__ = ["HS", "MappingResult", "Number", "Unclassified", "map_records"]
