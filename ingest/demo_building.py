"""A deterministic, realistic demo building in Brick 1.5 + RealEstateCore.

Used by the ``make run`` demo, by contract tests and by benchmarks at 5k / 50k / 500k triples.

Model contract (what queries and tests may rely on):

- one ``rec:Site`` ⊃ one ``rec:Building`` ⊃ ``floors`` × ``rec:Level`` (``rec:levelNumber`` 1..n),
  linked both ways with ``rec:hasPart`` / ``rec:isPartOf``;
- per level: ``vavs_per_floor`` ``rec:HVACZone`` (Brick 1.5 deprecates ``brick:HVAC_Zone`` for
  it), each ``rec:isPartOf`` its level and ``rec:hasPart`` two rooms (subclasses of ``rec:Room``;
  a room's single ``rec:isPartOf`` — REC allows at most one — points at its level), plus one
  corridor;
  level 1 also holds a mechanical room and an electrical room;
- plant in the mechanical room: a chiller and a boiler; one ``brick:Air_Handling_Unit`` for a
  one-floor building, two otherwise (lower / upper half of the floors); chiller and boiler
  ``brick:feeds`` the AHUs, each AHU feeds the VAVs of its floors, the boiler feeds every VAV
  (reheat water), each VAV feeds its zone and is located in the zone's first room;
- AHU parts (``brick:hasPart`` / ``brick:isPartOf``): supply fan, cooling valve, heating valve,
  outside-air damper; each VAV has a reheat valve;
- a ``brick:Building_Electrical_Meter`` that ``brick:meters`` the building, and one
  ``brick:Electrical_Meter`` per level that ``brick:meters`` the level and ``brick:isSubMeterOf``
  the main meter;
- every point: ``rdfs:label``, ``brick:isPointOf`` + ``brick:hasPoint``, a QUDT ``brick:hasUnit``
  (binary status / start-stop points carry none), and one
  ``ref:hasExternalReference [ a ref:TimeseriesReference ; ref:hasTimeseriesId "<uuid>" ]``.

Determinism: the same arguments give the same triples in the same order. Time-series ids are
``uuid5(uuid5(NAMESPACE_URL, "urn:twingraph:demo-seed:<seed>"), <point IRI>)``, so they depend on
the seed, the base and the entity's path; blank-node labels derive from the same UUID. The seed
also picks room types. Triple counts depend only on ``floors`` and ``vavs_per_floor``.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
import uuid
from collections.abc import Sequence
from functools import cache
from pathlib import Path

from pyoxigraph import BlankNode, Literal, NamedNode, RdfFormat, Triple, serialize

from app.domain.iris import BRICK, RDF_TYPE, RDFS, REC, REF, STANDARD_PREFIXES, UNIT, XSD

DEFAULT_BASE = "urn:twingraph:demo:"

_A = NamedNode(RDF_TYPE)
_LABEL = NamedNode(RDFS + "label")
_XSD_INTEGER = NamedNode(XSD + "integer")


def _b(name: str) -> NamedNode:
    return NamedNode(BRICK + name)


def _r(name: str) -> NamedNode:
    return NamedNode(REC + name)


_HAS_POINT, _IS_POINT_OF = _b("hasPoint"), _b("isPointOf")
_HAS_PART, _IS_PART_OF = _b("hasPart"), _b("isPartOf")
_HAS_LOCATION, _IS_LOCATION_OF = _b("hasLocation"), _b("isLocationOf")
_FEEDS, _HAS_UNIT = _b("feeds"), _b("hasUnit")
_METERS, _IS_METERED_BY, _IS_SUB_METER_OF = _b("meters"), _b("isMeteredBy"), _b("isSubMeterOf")
_REC_HAS_PART, _REC_IS_PART_OF, _LEVEL_NUMBER = _r("hasPart"), _r("isPartOf"), _r("levelNumber")
_HAS_EXT_REF = NamedNode(REF + "hasExternalReference")
_TS_REF = NamedNode(REF + "TimeseriesReference")
_TS_ID = NamedNode(REF + "hasTimeseriesId")

#: (IRI suffix, Brick point class, label, QUDT unit or None for binary points)
PointSpec = tuple[str, str, str, str | None]

_AHU_POINTS: tuple[PointSpec, ...] = (
    ("sat", "Supply_Air_Temperature_Sensor", "supply air temperature", "DEG_C"),
    ("sat-sp", "Supply_Air_Temperature_Setpoint", "supply air temperature setpoint", "DEG_C"),
    ("rat", "Return_Air_Temperature_Sensor", "return air temperature", "DEG_C"),
    ("mat", "Mixed_Air_Temperature_Sensor", "mixed air temperature", "DEG_C"),
    ("oat", "Outside_Air_Temperature_Sensor", "outside air temperature", "DEG_C"),
    ("sp", "Supply_Air_Static_Pressure_Sensor", "supply air static pressure", "PA"),
    ("sp-sp", "Supply_Air_Static_Pressure_Setpoint", "supply air static pressure setpoint", "PA"),
)
_FAN_POINTS: tuple[PointSpec, ...] = (
    ("status", "Fan_Status", "supply fan status", None),
    ("cmd", "Start_Stop_Command", "supply fan start/stop command", None),
    ("speed", "Fan_Speed_Command", "supply fan speed command", "PERCENT"),
)
#: (IRI suffix, Brick equipment class, label, its points) for the parts of every AHU
_AHU_PARTS: tuple[tuple[str, str, str, tuple[PointSpec, ...]], ...] = (
    ("sf", "Supply_Fan", "supply fan", _FAN_POINTS),
    (
        "ccv",
        "Cooling_Valve",
        "cooling coil valve",
        (("cmd", "Valve_Position_Command", "cooling valve command", "PERCENT"),),
    ),
    (
        "hcv",
        "Heating_Valve",
        "heating coil valve",
        (("cmd", "Valve_Position_Command", "heating valve command", "PERCENT"),),
    ),
    (
        "oad",
        "Outside_Damper",
        "outside air damper",
        (("cmd", "Damper_Position_Command", "outside air damper position command", "PERCENT"),),
    ),
)
_VAV_POINTS: tuple[PointSpec, ...] = (
    ("zat", "Zone_Air_Temperature_Sensor", "zone air temperature", "DEG_C"),
    ("clg-sp", "Cooling_Zone_Air_Temperature_Setpoint", "zone cooling setpoint", "DEG_C"),
    ("htg-sp", "Heating_Zone_Air_Temperature_Setpoint", "zone heating setpoint", "DEG_C"),
    ("saf", "Supply_Air_Flow_Sensor", "supply air flow", "L-PER-SEC"),
    ("dmp", "Damper_Position_Command", "damper position command", "PERCENT"),
)
_REHEAT_POINTS: tuple[PointSpec, ...] = (
    ("cmd", "Valve_Position_Command", "reheat valve command", "PERCENT"),
)
_CHILLER_POINTS: tuple[PointSpec, ...] = (
    (
        "chwst",
        "Leaving_Chilled_Water_Temperature_Sensor",
        "chilled water leaving temperature",
        "DEG_C",
    ),
    (
        "chwrt",
        "Entering_Chilled_Water_Temperature_Sensor",
        "chilled water entering temperature",
        "DEG_C",
    ),
    (
        "chwst-sp",
        "Leaving_Chilled_Water_Temperature_Setpoint",
        "chilled water leaving temperature setpoint",
        "DEG_C",
    ),
    ("cmd", "Start_Stop_Command", "chiller start/stop command", None),
)
_BOILER_POINTS: tuple[PointSpec, ...] = (
    ("hwst", "Leaving_Hot_Water_Temperature_Sensor", "hot water leaving temperature", "DEG_C"),
    ("hwrt", "Entering_Hot_Water_Temperature_Sensor", "hot water entering temperature", "DEG_C"),
    (
        "hwst-sp",
        "Leaving_Hot_Water_Temperature_Setpoint",
        "hot water leaving temperature setpoint",
        "DEG_C",
    ),
    ("cmd", "Start_Stop_Command", "boiler start/stop command", None),
)
_METER_POINTS: tuple[PointSpec, ...] = (
    ("power", "Electric_Power_Sensor", "electric power", "KiloW"),
    ("energy", "Electric_Energy_Sensor", "electric energy", "KiloW-HR"),
)
#: rec:Room subclasses the zones' rooms are drawn from (all current, none deprecated in 1.5)
_ROOM_TYPES: tuple[tuple[str, str], ...] = (
    ("Office", "Office"),
    ("OfficeLandscape", "Open office"),
    ("ConferenceRoom", "Conference room"),
    ("Kitchenette", "Kitchenette"),
    ("Office", "Office"),
)


class _Builder:
    def __init__(self, base: str, seed: int) -> None:
        self.base = base
        self.triples: list[Triple] = []
        self._uuid_ns = uuid.uuid5(uuid.NAMESPACE_URL, f"urn:twingraph:demo-seed:{seed}")
        self._units: dict[str, NamedNode] = {}
        self._classes: dict[str, NamedNode] = {}

    def add(
        self, s: NamedNode | BlankNode, p: NamedNode, o: NamedNode | BlankNode | Literal
    ) -> None:
        self.triples.append(Triple(s, p, o))

    def entity(self, path: str, cls: NamedNode, label: str) -> NamedNode:
        node = NamedNode(self.base + path)
        self.add(node, _A, cls)
        self.add(node, _LABEL, Literal(label))
        return node

    def brick(self, name: str) -> NamedNode:
        if name not in self._classes:
            self._classes[name] = _b(name)
        return self._classes[name]

    def part_of(self, child: NamedNode, parent: NamedNode) -> None:
        """Spatial containment, both directions (REC allows one ``rec:isPartOf`` per space)."""
        self.add(parent, _REC_HAS_PART, child)
        self.add(child, _REC_IS_PART_OF, parent)

    def locate(self, equipment: NamedNode, space: NamedNode) -> None:
        self.add(equipment, _HAS_LOCATION, space)
        self.add(space, _IS_LOCATION_OF, equipment)

    def equipment(
        self, path: str, cls: str, label: str, points: Sequence[PointSpec], prefix: str = ""
    ) -> NamedNode:
        node = self.entity(path, self.brick(cls), label)
        for suffix, point_cls, point_label, unit in points:
            self.point(node, f"{path}/{suffix}", point_cls, f"{prefix}{point_label}", unit)
        return node

    def sub_equipment(
        self,
        parent: NamedNode,
        path: str,
        cls: str,
        label: str,
        points: Sequence[PointSpec],
        prefix: str,
    ) -> NamedNode:
        node = self.equipment(path, cls, f"{prefix}{label}", points, prefix)
        self.add(parent, _HAS_PART, node)
        self.add(node, _IS_PART_OF, parent)
        return node

    def point(
        self, equipment: NamedNode, path: str, cls: str, label: str, unit: str | None
    ) -> None:
        node = self.entity(path, self.brick(cls), label)
        if unit is not None:
            if unit not in self._units:
                self._units[unit] = NamedNode(UNIT + unit)
            self.add(node, _HAS_UNIT, self._units[unit])
        self.add(node, _IS_POINT_OF, equipment)
        self.add(equipment, _HAS_POINT, node)
        ts_id = uuid.uuid5(self._uuid_ns, node.value)
        ref = BlankNode(f"ts{ts_id.hex}")
        self.add(node, _HAS_EXT_REF, ref)
        self.add(ref, _A, _TS_REF)
        self.add(ref, _TS_ID, Literal(str(ts_id)))


def generate_building(
    *, floors: int = 3, vavs_per_floor: int = 6, seed: int = 0, base: str = DEFAULT_BASE
) -> list[Triple]:
    """The demo building as triples, in a stable order (see the module docstring)."""
    if floors < 1 or vavs_per_floor < 1:
        raise ValueError("floors and vavs_per_floor must both be >= 1")
    NamedNode(base + "x")  # fail early, with pyoxigraph's message, on a base that is no IRI prefix
    rng = random.Random(seed)
    g = _Builder(base, seed)
    width = max(2, len(str(floors)))

    site = g.entity("site", _r("Site"), "TwinGraph demo campus")
    bldg = g.entity("bldg", _r("Building"), "Demo office building")
    g.part_of(bldg, site)

    levels: list[NamedNode] = []
    for n in range(1, floors + 1):
        level = g.entity(f"bldg/L{n:0{width}d}", _r("Level"), f"Level {n}")
        g.add(level, _LEVEL_NUMBER, Literal(str(n), datatype=_XSD_INTEGER))
        g.part_of(level, bldg)
        levels.append(level)

    mech = g.entity(f"bldg/L{1:0{width}d}/mech-room", _r("UtilitiesRoom"), "Mechanical room")
    elec = g.entity(f"bldg/L{1:0{width}d}/elec-room", _r("ElectricityRoom"), "Electrical room")
    g.part_of(mech, levels[0])
    g.part_of(elec, levels[0])

    chiller = g.equipment("bldg/plant/chiller-1", "Chiller", "Chiller 1", _CHILLER_POINTS, "CH-1 ")
    boiler = g.equipment("bldg/plant/boiler-1", "Boiler", "Boiler 1", _BOILER_POINTS, "B-1 ")
    g.locate(chiller, mech)
    g.locate(boiler, mech)

    n_ahus = 1 if floors == 1 else 2
    split = math.ceil(floors / n_ahus)
    ahus: list[NamedNode] = []
    for a in range(1, n_ahus + 1):
        path, prefix = f"bldg/ahu-{a}", f"AHU-{a} "
        ahu = g.equipment(path, "Air_Handling_Unit", f"AHU-{a}", _AHU_POINTS, prefix)
        for suffix, cls, label, points in _AHU_PARTS:
            g.sub_equipment(ahu, f"{path}/{suffix}", cls, label, points, prefix)
        g.locate(ahu, mech)
        g.add(chiller, _FEEDS, ahu)
        g.add(boiler, _FEEDS, ahu)
        ahus.append(ahu)

    main_meter = g.equipment(
        "bldg/meter-main",
        "Building_Electrical_Meter",
        "Main electrical meter",
        _METER_POINTS,
        "Main meter ",
    )
    g.locate(main_meter, elec)
    g.add(main_meter, _METERS, bldg)
    g.add(bldg, _IS_METERED_BY, main_meter)

    for index, level in enumerate(levels):
        n = index + 1
        lpath = f"bldg/L{n:0{width}d}"
        ahu = ahus[index // split]
        corridor = g.entity(f"{lpath}/corridor", _r("Hallway"), f"Level {n} corridor")
        g.part_of(corridor, level)
        meter = g.equipment(
            f"{lpath}/meter",
            "Electrical_Meter",
            f"Level {n} electrical meter",
            _METER_POINTS,
            f"L{n} meter ",
        )
        g.locate(meter, corridor)
        g.add(meter, _METERS, level)
        g.add(meter, _IS_SUB_METER_OF, main_meter)
        for v in range(1, vavs_per_floor + 1):
            tag = f"{n}.{v:02d}"
            zone = g.entity(f"{lpath}/zone-{v:02d}", _r("HVACZone"), f"HVAC zone {tag}")
            g.part_of(zone, level)
            rooms = []
            for letter in "ab":
                cls, kind = rng.choice(_ROOM_TYPES)
                room = g.entity(f"{lpath}/room-{v:02d}{letter}", _r(cls), f"{kind} {tag}{letter}")
                g.part_of(room, level)
                g.add(zone, _REC_HAS_PART, room)
                rooms.append(room)
            vpath, prefix = f"{lpath}/vav-{v:02d}", f"VAV-{tag} "
            vav = g.equipment(
                vpath, "Variable_Air_Volume_Box_With_Reheat", f"VAV-{tag}", _VAV_POINTS, prefix
            )
            g.sub_equipment(
                vav, f"{vpath}/rhv", "Reheat_Valve", "reheat valve", _REHEAT_POINTS, prefix
            )
            g.locate(vav, rooms[0])
            g.add(ahu, _FEEDS, vav)
            g.add(boiler, _FEEDS, vav)
            g.add(vav, _FEEDS, zone)
    return g.triples


#: Prefixes for the Turtle rendering.
TURTLE_PREFIXES: dict[str, str] = {
    name: STANDARD_PREFIXES[name] for name in ("rdf", "rdfs", "xsd", "brick", "rec", "ref", "unit")
}


def to_turtle(triples: Sequence[Triple]) -> str:
    """Turtle with the usual prefixes, each subject's triples grouped together.

    Subjects keep the order of their first appearance, so the text is as deterministic as the
    triples. (Instance IRIs stay written in full: their ``/`` would need escaping in a prefixed
    name, which reads worse.)
    """
    grouped: dict[NamedNode | BlankNode | Triple, list[Triple]] = {}
    for triple in triples:
        grouped.setdefault(triple.subject, []).append(triple)
    ordered = [triple for group in grouped.values() for triple in group]
    data = serialize(ordered, format=RdfFormat.TURTLE, prefixes=TURTLE_PREFIXES)
    assert data is not None
    return data.decode("utf-8")


@cache
def _coefficients() -> tuple[int, int, int, int]:
    """(one-floor total, base, per floor, per VAV) measured on tiny buildings.

    For ``floors >= 2`` the count is exactly ``base + per_floor*floors + per_vav*floors*vavs``
    (two AHUs, and every floor / VAV adds a fixed number of triples); one floor has one AHU.
    Measuring rather than hand-counting keeps this true when the generator changes.
    """

    def count(f: int, v: int) -> int:
        return len(generate_building(floors=f, vavs_per_floor=v))

    c21, c31, c22 = count(2, 1), count(3, 1), count(2, 2)
    per_vav = (c22 - c21) // 2
    per_floor = c31 - c21 - per_vav
    base = c21 - 2 * per_floor - 2 * per_vav
    one_floor = count(1, 1) - per_floor - per_vav
    return one_floor, base, per_floor, per_vav


def triple_count(floors: int, vavs_per_floor: int) -> int:
    """Exactly ``len(generate_building(floors=..., vavs_per_floor=...))``, without generating."""
    one_floor, base, per_floor, per_vav = _coefficients()
    fixed = one_floor if floors == 1 else base
    return fixed + per_floor * floors + per_vav * floors * vavs_per_floor


def size_for(target_triples: int) -> tuple[int, int]:
    """(floors, vavs_per_floor) whose building is as close as possible to ``target_triples``.

    Rule: the building is about four times as wide (VAVs per floor) as it is tall (floors):
    ``floors = round(sqrt(V / 4))`` where ``V`` is the number of VAVs the target affords; then
    ``vavs_per_floor`` is the best fit for that many floors. A row of VAVs is small next to the
    whole building from ~2k triples up, so 5k / 50k / 500k land within a few percent.
    """
    if target_triples <= 0:
        raise ValueError("target_triples must be positive")
    _, base, per_floor, per_vav = _coefficients()
    vavs = max(1.0, (target_triples - base) / (per_vav + per_floor / 4))
    floors = max(1, round(math.sqrt(vavs / 4)))
    best = min(
        (abs(triple_count(floors, v) - target_triples), v)
        for v in {
            max(1, math.floor((target_triples - base - per_floor * floors) / (per_vav * floors))),
            max(1, math.ceil((target_triples - base - per_floor * floors) / (per_vav * floors))),
        }
    )
    return floors, best[1]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ingest.demo_building", description="Write the demo building as Turtle."
    )
    parser.add_argument("--floors", type=int, default=3)
    parser.add_argument("--vavs-per-floor", type=int, default=6)
    parser.add_argument(
        "--target-triples",
        type=int,
        default=None,
        help="pick floors and VAVs per floor for about this many triples",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default=DEFAULT_BASE)
    parser.add_argument("-o", "--output", type=Path, default=None, help="file (default: stdout)")
    args = parser.parse_args(argv)
    floors, vavs = args.floors, args.vavs_per_floor
    if args.target_triples is not None:
        floors, vavs = size_for(args.target_triples)
    started = time.perf_counter()
    triples = generate_building(floors=floors, vavs_per_floor=vavs, seed=args.seed, base=args.base)
    text = to_turtle(triples)
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
    print(
        f"{len(triples)} triples ({floors} floors x {vavs} VAVs) in "
        f"{time.perf_counter() - started:.2f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
