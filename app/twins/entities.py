"""What the graph says about twin entities: classes, kind, writability, graph, site, points.

A twin can mirror any equipment or point. Writable points are Brick setpoints, commands
and parameters (their subclasses included, by the class hierarchy). The site is the
``rec:Site``/``brick:Site`` the entity is inside of (through parts, locations and
``isPointOf``), used for event filters unless the twin names its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from uuid import UUID

from pyoxigraph import Literal, NamedNode

from app.domain.iris import (
    BRICK,
    INFERRED_GRAPH_PREFIX,
    ONTOLOGY_GRAPH_PREFIX,
    RDFS,
    REC,
    STAGING_GRAPH_PREFIX,
)
from app.graph.ontology import ClassHierarchy
from app.graph.store import GraphStore
from app.points import PointDirectory

EQUIPMENT = BRICK + "Equipment"
POINT = BRICK + "Point"
WRITABLE_CLASSES = frozenset({BRICK + "Setpoint", BRICK + "Command", BRICK + "Parameter"})
SITE_CLASSES = (REC + "Site", BRICK + "Site")
#: "Inside of" relations (as in ``app.graph.entities.WITHIN_PATH``), read both ways.
_UP = (BRICK + "isPartOf", REC + "isPartOf", BRICK + "isPointOf", BRICK + "hasLocation")
_DOWN = (BRICK + "hasPart", REC + "hasPart", BRICK + "hasPoint", BRICK + "isLocationOf")


@dataclass(frozen=True, slots=True)
class EntityInfo:
    iri: str
    classes: frozenset[str]
    graph: str | None
    site: str | None
    label: str | None
    #: Time-series UUID (points only).
    point: UUID | None

    @property
    def exists(self) -> bool:
        return bool(self.classes)

    @property
    def kind(self) -> str | None:
        if POINT in self.classes:
            return "point"
        if EQUIPMENT in self.classes:
            return "equipment"
        return None

    @property
    def writable(self) -> bool:
        return self.kind == "point" and not WRITABLE_CLASSES.isdisjoint(self.classes)


@dataclass(frozen=True, slots=True)
class PointInfo:
    iri: str
    uuid: UUID
    label: str | None
    classes: frozenset[str]
    unit: str | None

    @property
    def writable(self) -> bool:
        return not WRITABLE_CLASSES.isdisjoint(self.classes)


def _iri(text: str) -> str:
    return str(NamedNode(text))


_MODEL_GRAPH_FILTER = (
    f'!STRSTARTS(STR(?o), "{INFERRED_GRAPH_PREFIX}") && '
    f'!STRSTARTS(STR(?o), "{ONTOLOGY_GRAPH_PREFIX}") && '
    f'!STRSTARTS(STR(?o), "{STAGING_GRAPH_PREFIX}")'
)


class TwinEntities:
    def __init__(
        self, store: GraphStore, hierarchy: ClassHierarchy, points: PointDirectory
    ) -> None:
        self._store = store
        self._hierarchy = hierarchy
        self._points = points

    def _rows(self, query: str) -> list[list[str | None]]:
        result = self._store.query(query)
        return [
            [None if t is None else t.value for t in row]
            for row in result  # type: ignore[union-attr]
        ]

    def describe(self, iris: Sequence[str]) -> dict[str, EntityInfo]:
        """One query for many entities; an IRI the graph does not know has no classes."""
        if not iris:
            return {}
        values = " ".join(_iri(i) for i in iris)
        rows = self._rows(
            f"""SELECT ?s ?k ?o WHERE {{ VALUES ?s {{ {values} }}
              {{ ?s a ?o BIND("class" AS ?k) }}
              UNION {{ GRAPH ?o {{ ?s a ?c }} FILTER({_MODEL_GRAPH_FILTER}) BIND("graph" AS ?k) }}
              UNION {{ ?s <{RDFS}label> ?o BIND("label" AS ?k) }}
            }}"""
        )
        site_of = self._sites(iris)
        found: dict[str, dict[str, set[str]]] = {i: {} for i in iris}
        for s, k, o in rows:
            if s is not None and k is not None and o is not None:
                found.setdefault(s, {}).setdefault(k, set()).add(o)
        out = {}
        for iri in iris:
            parts = found.get(iri, {})
            classes: set[str] = set()
            for c in parts.get("class", ()):
                classes |= self._hierarchy.superclasses(c)
            point = None
            if POINT in classes:
                ref = self._points.resolve(iri)
                point = ref.uuid if ref is not None and ref.point == iri else None
            out[iri] = EntityInfo(
                iri=iri,
                classes=frozenset(classes),
                graph=min(parts.get("graph", ()), default=None),
                site=site_of.get(iri),
                label=min(parts.get("label", ()), default=None),
                point=point,
            )
        return out

    def _sites(self, iris: Sequence[str], max_hops: int = 16) -> dict[str, str]:
        """The nearest site each entity is inside of, by a breadth-first walk over the
        containment relations, one query per hop for all entities (a ``(...)+`` property
        path costs ~100 ms per entity in Oxigraph; this, a few ms)."""
        sites = ", ".join(_iri(c) for c in SITE_CLASSES)
        fwd = " ".join(_iri(p) for p in _UP)
        inv = " ".join(_iri(p) for p in _DOWN)
        found: dict[str, str] = {}
        seen: dict[str, set[str]] = {i: {i} for i in iris}
        frontier: dict[str, set[str]] = {i: {i} for i in iris}  # node -> origins
        for _ in range(max_hops):
            if not frontier:
                break
            values = " ".join(_iri(n) for n in frontier)
            rows = self._rows(
                f"""SELECT ?n ?o ?sc WHERE {{ VALUES ?n {{ {values} }}
                  {{ VALUES ?p {{ {fwd} }} ?n ?p ?o }} UNION {{ VALUES ?p {{ {inv} }} ?o ?p ?n }}
                  FILTER(isIRI(?o))
                  OPTIONAL {{ ?o a ?sc FILTER(?sc IN ({sites})) }}
                }}"""
            )
            nxt: dict[str, set[str]] = {}
            for n, o, site_class in sorted(rows, key=lambda r: [x or "" for x in r]):
                if n is None or o is None:
                    continue
                for origin in frontier.get(n, ()):
                    if origin in found or o in seen[origin]:
                        continue
                    seen[origin].add(o)
                    if site_class is not None:
                        found[origin] = o
                    else:
                        nxt.setdefault(o, set()).add(origin)
            frontier = {n: {o for o in origins if o not in found} for n, origins in nxt.items()}
            frontier = {n: origins for n, origins in frontier.items() if origins}
        return found

    def points_of(self, equipment: str) -> list[PointInfo]:
        """The points of an equipment (``brick:hasPoint`` or ``brick:isPointOf``)."""
        e = _iri(equipment)
        rows = self._rows(
            f"""SELECT ?p ?c ?l ?u WHERE {{
              {{ {e} <{BRICK}hasPoint> ?p }} UNION {{ ?p <{BRICK}isPointOf> {e} }}
              ?p a ?c .
              OPTIONAL {{ ?p <{RDFS}label> ?l }} OPTIONAL {{ ?p <{BRICK}hasUnit> ?u }}
            }}"""
        )
        by: dict[str, tuple[set[str], set[str], set[str]]] = {}
        for p, c, label, unit in rows:
            if p is None:
                continue
            classes, labels, units = by.setdefault(p, (set(), set(), set()))
            if c is not None:
                classes |= self._hierarchy.superclasses(c)
            if label is not None:
                labels.add(label)
            if unit is not None:
                units.add(unit)
        out = []
        for p, (classes, labels, units) in sorted(by.items()):
            ref = self._points.resolve(p)
            if ref is None or ref.point != p:
                continue
            out.append(
                PointInfo(
                    iri=p,
                    uuid=ref.uuid,
                    label=min(labels, default=None),
                    classes=frozenset(classes),
                    unit=min(units, default=None),
                )
            )
        return out

    def labelled(self, label: str) -> list[str]:
        """Entities whose ``rdfs:label`` is exactly ``label`` (a plain string)."""
        rows = self._rows(
            f"SELECT DISTINCT ?s WHERE {{ ?s <{RDFS}label> {Literal(label)} FILTER(isIRI(?s)) }}"
        )
        return sorted(r[0] for r in rows if r[0] is not None)

    def most_specific(self, classes: Iterable[str]) -> list[str]:
        from app.graph.entities import most_specific

        return most_specific(classes, self._hierarchy)
