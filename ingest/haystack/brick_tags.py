"""Haystack marker tags -> the most specific Brick point class, by Brick's own tag sets.

Brick 1.5 gives every class its tags (``brick:hasAssociatedTag``). A Haystack point's markers
are translated into Brick tags (``temp`` -> Temperature, ``sp`` -> Setpoint, ``discharge`` ->
Discharge and Supply, ...); the candidates are the non-deprecated point classes whose tags
are all present, within the family the point's function allows (a ``sensor`` is a Sensor or
a Status, an ``sp`` a Setpoint, a ``cmd`` a Command); the class with the most tags wins, ties
broken by name. This is what ``brickschema``'s ``HaystackInferenceSession`` does with its
approximate matcher, without its 3 s start-up or its random identifiers, and deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import brickschema
from pyoxigraph import RdfFormat, Store

from app.domain.iris import BRICK, OWL, RDFS

#: Haystack marker -> Brick tags it stands for. Markers not listed are title-cased.
TAG_MAP: dict[str, tuple[str, ...]] = {
    "temp": ("Temperature",),
    "sp": ("Setpoint",),
    "cmd": ("Command",),
    "sensor": ("Sensor",),
    "discharge": ("Discharge", "Supply"),
    "supply": ("Supply", "Discharge"),
    "occ": ("Occupied",),
    "unocc": ("Unoccupied",),
    "occupied": ("Occupancy",),
    "heat": ("Heat", "Heating"),
    "heating": ("Heat", "Heating"),
    "cool": ("Cool", "Cooling"),
    "cooling": ("Cool", "Cooling"),
    "elec": ("Electric", "Electrical"),
    "freq": ("Frequency",),
    "delta": ("Differential",),
    "coldDeck": ("Cold", "Deck"),
    "hotDeck": ("Hot", "Deck"),
    "refrig": ("Refrigerant",),
    "run": ("Run", "Status", "Start", "Stop"),
    "enable": ("Enable",),
    "co2": ("CO2",),
    "co": ("CO",),
    "lights": ("Lighting",),
    "damper": ("Damper", "Position"),
    "valve": ("Valve", "Position"),
    "lightsGroup": ("Lighting",),
    "weather": ("Outside",),
    "domestic": ("Domestic",),
    "volume": ("Volume",),
    "humidity": ("Humidity", "Relative"),
    "pressure": ("Pressure", "Static"),
    "effective": ("Effective",),
    "entering": ("Entering", "Return"),
    "leaving": ("Leaving", "Supply"),
    "primaryLoop": ("Primary",),
    "secondaryLoop": ("Secondary",),
    "tariffHis": ("Tariff",),
}
_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "sensor": ("Sensor", "Status", "Alarm"),
    "sp": ("Setpoint", "Parameter", "Limit"),
    "cmd": ("Command",),
}
#: The classes a point falls back to when no specific class matches.
GENERIC_POINTS = frozenset({"Point", "Sensor", "Setpoint", "Command", "Status"})
#: Markers that are about the record, not about what it is.
_IGNORED = frozenset({"point", "his", "cur", "writable", "hisTotalized", "equip", "site"})


@dataclass(frozen=True, slots=True)
class BrickClass:
    name: str
    tags: frozenset[str]
    families: frozenset[str]


def brick_path() -> Path:
    return Path(brickschema.__file__).parent / "ontologies" / "1.5" / "Brick.ttl"


@cache
def brick_store() -> Store:
    store = Store()
    store.load(path=str(brick_path()), format=RdfFormat.TURTLE)
    return store


@cache
def point_classes() -> tuple[BrickClass, ...]:
    families = ", ".join(f"<{BRICK}{f}>" for fs in _FUNCTIONS.values() for f in fs)
    query = f"""SELECT ?c (GROUP_CONCAT(DISTINCT STRAFTER(STR(?t), "#"); separator=" ") AS ?tags)
        (GROUP_CONCAT(DISTINCT STRAFTER(STR(?f), "#"); separator=" ") AS ?fams) WHERE {{
      ?c <{RDFS}subClassOf>* <{BRICK}Point> ; <https://brickschema.org/schema/Brick#hasAssociatedTag> ?t .
      OPTIONAL {{ ?c <{RDFS}subClassOf>* ?f . FILTER(?f IN ({families})) }}
      FILTER NOT EXISTS {{ ?c <{OWL}deprecated> true }}
      FILTER NOT EXISTS {{ ?c <{BRICK}aliasOf> ?other }}
    }} GROUP BY ?c"""
    out = []
    for row in brick_store().query(query):  # type: ignore[union-attr]
        name = row["c"].value.removeprefix(BRICK)
        tags = frozenset(row["tags"].value.split()) - {"Point"}
        fams = frozenset(row["fams"].value.split()) if row["fams"] else frozenset()
        out.append(BrickClass(name, tags, fams))
    return tuple(sorted(out, key=lambda c: c.name))


@cache
def known_classes() -> frozenset[str]:
    query = f"""SELECT ?c WHERE {{ {{ ?c a <{OWL}Class> }} UNION {{ ?c a <{RDFS}Class> }}
        FILTER NOT EXISTS {{ ?c <{OWL}deprecated> true }} }}"""
    return frozenset(
        str(row["c"].value)
        for row in brick_store().query(query)  # type: ignore[union-attr]
    )


def brick_tags(markers: frozenset[str]) -> frozenset[str]:
    out: set[str] = set()
    for m in markers - _IGNORED:
        out.update(TAG_MAP.get(m, (m[:1].upper() + m[1:],)))
    if "sp" in markers and not markers & {"heat", "heating", "cool", "cooling"}:
        # Brick 1.3 replaced Zone_Air_Temperature_Setpoint by Target_...: a setpoint that is
        # neither the heating nor the cooling one is the target.
        out.add("Target")
    return frozenset(out)


def classify_point(markers: frozenset[str]) -> str:
    """The local name of the most specific Brick point class for these markers."""
    tags = brick_tags(markers)
    function = next((f for f in ("sensor", "sp", "cmd") if f in markers), None)
    allowed = frozenset(_FUNCTIONS[function]) if function else None
    best: BrickClass | None = None
    for cls in point_classes():
        if not cls.tags or not cls.tags <= tags:
            continue
        if allowed is not None and not (cls.families & allowed):
            continue
        if best is None or len(cls.tags) > len(best.tags):
            best = cls
    if best is not None:
        return best.name
    return {"sensor": "Sensor", "sp": "Setpoint", "cmd": "Command"}.get(function or "", "Point")
