"""Haystack tags for entities that did not come from Haystack: derived from Brick classes.

Points get the markers of their class's Brick tags (``brick:hasAssociatedTag``), translated
back through the same table the ingest mapping uses (``Temperature`` -> ``temp``,
``Setpoint`` -> ``sp``), so a Zone_Air_Temperature_Sensor reads ``zone air temp sensor
point``. Equipment gets the markers of the ingest rule for its class (``ahu``, ``vav``,
``chiller``, ...). Units go back from QUDT to the Haystack symbol the ingest maps from.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache

from app.domain.iris import BRICK, REC, UNIT
from app.graph.ontology import ClassHierarchy
from ingest.haystack.brick_tags import TAG_MAP
from ingest.haystack.mapping import EQUIP_RULES
from ingest.haystack.units import HAYSTACK_TO_QUDT

#: Brick tags that say what kind of entity something is: Haystack has its own markers.
_ENTITY_TAGS = frozenset({"Point", "Equipment", "Location", "Space"})
#: Haystack markers in TAG_MAP that are not the natural way back for their Brick tag.
_NOT_INVERSE = frozenset(
    {"weather", "lightsGroup", "primaryLoop", "secondaryLoop", "tariffHis", "heating", "cooling"}
)


@cache
def _inverse_tag_map() -> dict[str, str]:
    out: dict[str, str] = {}
    for marker, brick in TAG_MAP.items():
        if marker not in _NOT_INVERSE:
            out.setdefault(brick[0], marker)
    return out


def marker_for(brick_tag: str) -> str:
    """The Haystack marker for one Brick tag (``Air`` -> ``air``, ``CO2`` -> ``co2``)."""
    mapped = _inverse_tag_map().get(brick_tag)
    if mapped:
        return mapped
    if brick_tag.isupper():
        return brick_tag.lower()
    return brick_tag[:1].lower() + brick_tag[1:]


def point_markers(class_tags: Iterable[str]) -> set[str]:
    return {marker_for(t) for t in class_tags if t not in _ENTITY_TAGS}


def equip_markers(
    classes: Iterable[str], hierarchy: ClassHierarchy, class_tags: Mapping[str, frozenset[str]]
) -> set[str]:
    """Markers of the most specific ingest rule that covers one of ``classes``."""
    best: tuple[int, frozenset[str]] | None = None
    for cls in classes:
        supers = hierarchy.superclasses(cls)
        for required, rule_cls in EQUIP_RULES:
            target = BRICK + rule_cls
            if target in supers:
                depth = len(hierarchy.superclasses(target))
                if best is None or depth > best[0]:
                    best = (depth, required)
    if best is not None:
        return set(best[1])
    out: set[str] = set()
    for cls in classes:
        out |= point_markers(class_tags.get(cls, frozenset()))
    return out


def space_markers(classes: Iterable[str], hierarchy: ClassHierarchy) -> set[str]:
    supers: set[str] = set()
    for cls in classes:
        supers |= hierarchy.superclasses(cls)
    out = set()
    if supers & {REC + "Level", BRICK + "Floor"}:
        out.add("floor")
    if supers & {REC + "Room", BRICK + "Room"}:
        out.add("room")
    return out


@cache
def _unit_symbols() -> dict[str, str]:
    out: dict[str, str] = {}
    for symbol, name in HAYSTACK_TO_QUDT.items():
        out.setdefault(UNIT + name, symbol)
    return out


def unit_symbol(qudt_iri: str) -> str | None:
    """The Haystack unit symbol for a QUDT unit IRI, or None when there is none."""
    return _unit_symbols().get(qudt_iri)
