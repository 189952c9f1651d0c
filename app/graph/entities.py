"""Batch lookups of building entities: one SPARQL query for many IRIs.

The GraphQL API resolves nested selections through data loaders; each loader calls one of
these methods with every IRI it collected, so the number of queries depends on the shape
of the request, not on the number of entities in it.

Types come from ``?s a ?c`` over the union default graph: the superclass memberships that
ingest materialised in each model's inferred graph make that the full class closure.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from pyoxigraph import Literal, NamedNode

from app.domain.iris import (
    BRICK,
    INFERRED_GRAPH_PREFIX,
    ONTOLOGY_GRAPH_PREFIX,
    RDF_TYPE,
    RDFS,
    REC,
    REF,
    STAGING_GRAPH_PREFIX,
    STANDARD_PREFIXES,
)
from app.errors import InvalidInputError
from app.graph.ontology import ClassHierarchy
from app.graph.store import GraphStore

#: Relationship name -> (predicates stating it, predicates stating its inverse). Both are
#: read, so ``hasPart`` is answered whether a model wrote ``hasPart`` or ``isPartOf``.
RELATIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "hasPart": ((BRICK + "hasPart", REC + "hasPart"), (BRICK + "isPartOf", REC + "isPartOf")),
    "isPartOf": ((BRICK + "isPartOf", REC + "isPartOf"), (BRICK + "hasPart", REC + "hasPart")),
    "hasPoint": ((BRICK + "hasPoint",), (BRICK + "isPointOf",)),
    "isPointOf": ((BRICK + "isPointOf",), (BRICK + "hasPoint",)),
    "feeds": ((BRICK + "feeds",), (BRICK + "isFedBy",)),
    "isFedBy": ((BRICK + "isFedBy",), (BRICK + "feeds",)),
    "hasLocation": ((BRICK + "hasLocation",), (BRICK + "isLocationOf",)),
    "isLocationOf": ((BRICK + "isLocationOf",), (BRICK + "hasLocation",)),
    "meters": ((BRICK + "meters",), (BRICK + "isMeteredBy",)),
    "isMeteredBy": ((BRICK + "isMeteredBy",), (BRICK + "meters",)),
}
_ALL_RELATION_PREDICATES = sorted({p for fwd, inv in RELATIONS.values() for p in fwd + inv})

#: "Inside" for ``within``: spatial containment, a point's equipment, equipment's location.
WITHIN_PATH = "|".join(
    [f"<{BRICK}isPartOf>", f"<{REC}isPartOf>", f"^<{BRICK}hasPart>", f"^<{REC}hasPart>"]
    + [f"<{BRICK}isPointOf>", f"^<{BRICK}hasPoint>"]
    + [f"<{BRICK}hasLocation>", f"^<{BRICK}isLocationOf>"]
)

_TS_ID = REF + "hasTimeseriesId"
#: The classes that decide which kind of entity a node is (its GraphQL type). Only these
#: are fetched with every description; the full class set is a separate, lazy query.
KIND_CLASSES: tuple[str, ...] = (
    BRICK + "Point",
    BRICK + "Equipment",
    REC + "Site",
    BRICK + "Site",
    REC + "Building",
    BRICK + "Building",
    REC + "Level",
    BRICK + "Floor",
    REC + "Space",
    BRICK + "Space",
    BRICK + "Location",
    REC + "Zone",
    BRICK + "Zone",
)
_LEVEL_NUMBER = REC + "levelNumber"
_COMPACT = re.compile(r"^([A-Za-z][\w-]*):([^\s<>\"{}|\\^`]*)$")


@dataclass(frozen=True, slots=True)
class ExternalRef:
    """A ``ref:hasExternalReference`` node: its class and its properties."""

    kind: str | None
    properties: tuple[tuple[str, str], ...]

    @property
    def timeseries_id(self) -> str | None:
        return next((v for p, v in self.properties if p == _TS_ID), None)


@dataclass(frozen=True, slots=True)
class EntityRecord:
    iri: str
    #: The entity's classes among KIND_CLASSES.
    kinds: frozenset[str] = frozenset()
    labels: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    units: tuple[str, ...] = ()
    level_number: int | None = None
    external_refs: tuple[ExternalRef, ...] = ()

    @property
    def exists(self) -> bool:
        return bool(self.kinds or self.labels or self.external_refs)

    @property
    def timeseries_id(self) -> str | None:
        return next((r.timeseries_id for r in self.external_refs if r.timeseries_id), None)


def most_specific(classes: Iterable[str], hierarchy: ClassHierarchy) -> list[str]:
    """The classes no other of ``classes`` is a strict subclass of (the asserted ones, as
    far as the ontology can tell; equivalent classes are all kept)."""
    pool = set(classes)
    out = []
    for c in pool:
        if not any(
            d != c and c in hierarchy.superclasses(d) and d not in hierarchy.superclasses(c)
            for d in pool
        ):
            out.append(c)
    return sorted(out)


@dataclass(slots=True)
class _Builder:
    classes: set[str] = field(default_factory=set)
    labels: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    units: list[str] = field(default_factory=list)
    level: int | None = None
    refs: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def build(self, iri: str) -> EntityRecord:
        refs = []
        for props in self.refs.values():
            kinds = props.pop(RDF_TYPE, [])
            pairs = tuple(sorted((p, v) for p, vs in props.items() for v in vs))
            # Brick's own reference classes first, the most specific (longest name) first.
            kinds.sort(key=lambda k: (not k.startswith(REF), -len(k), k))
            refs.append(ExternalRef(kinds[0] if kinds else None, pairs))
        return EntityRecord(
            iri=iri,
            kinds=frozenset(self.classes),
            labels=tuple(sorted(set(self.labels))),
            tags=tuple(sorted(set(self.tags))),
            units=tuple(sorted(set(self.units))),
            level_number=self.level,
            external_refs=tuple(sorted(refs, key=lambda r: r.properties)),
        )


@dataclass(frozen=True, slots=True)
class EntityFilter:
    label_contains: str | None = None
    tags: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Page:
    records: list[EntityRecord]
    has_next: bool


def expand_iri(text: str) -> str:
    """A full IRI from ``brick:VAV`` (standard prefixes) or ``<...>``/a full IRI."""
    text = text.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    match = _COMPACT.match(text)
    if match and match.group(1) in STANDARD_PREFIXES and not text.startswith("urn:"):
        text = STANDARD_PREFIXES[match.group(1)] + match.group(2)
    try:
        NamedNode(text)
    except ValueError:
        raise InvalidInputError(f"{text!r} is not an IRI", code="bad_iri") from None
    if ":" not in text:
        raise InvalidInputError(f"{text!r} is not an absolute IRI", code="bad_iri")
    return text


def compact_iri(iri: str) -> str:
    for prefix, ns in STANDARD_PREFIXES.items():
        if iri.startswith(ns) and "/" not in iri[len(ns) :] and "#" not in iri[len(ns) :]:
            return f"{prefix}:{iri[len(ns) :]}"
    return iri


def _iri(text: str) -> str:
    return str(NamedNode(text))


def _values(var: str, iris: Iterable[str]) -> str:
    return f"VALUES ?{var} {{ {' '.join(_iri(i) for i in iris)} }}"


# FILTER IN, not VALUES, for the kinds: Oxigraph then reads each entity's types once
# instead of joining every entity with every kind (5x faster on 1,000 points). Reference
# nodes' inferred types (s223, ...) are left out: Brick's own say what they are.
_KIND_LIST = ", ".join(_iri(c) for c in KIND_CLASSES)
_DESCRIBE = f"""{{ ?s a ?o FILTER(?o IN ({_KIND_LIST})) BIND("type" AS ?k) }}
  UNION {{ ?s <{RDFS}label> ?o BIND("label" AS ?k) }}
  UNION {{ ?s <{BRICK}hasTag> ?o BIND("tag" AS ?k) }}
  UNION {{ ?s <{BRICK}hasUnit> ?o BIND("unit" AS ?k) }}
  UNION {{ ?s <{_LEVEL_NUMBER}> ?o BIND("level" AS ?k) }}
  UNION {{ ?s <{REF}hasExternalReference> ?r . ?r ?rp ?o
           FILTER(?rp != <{RDF_TYPE}> || STRSTARTS(STR(?o), "{REF}")) BIND("ref" AS ?k) }}"""


# The light description: kinds and time series ids only (enough for a node's GraphQL type
# and its readings). OPTIONALs, not a UNION: Oxigraph evaluates a UNION's page sub-select
# once per branch; this costs about one evaluation (~70 ms vs ~200 ms on 1,000 points).
_LIGHT_KINDS = f"OPTIONAL {{ ?s a ?o FILTER(?o IN ({_KIND_LIST})) }}"
_LIGHT_TS = f"OPTIONAL {{ ?s <{REF}hasExternalReference> ?r . ?r <{_TS_ID}> ?ts }}"


class EntityService:
    """Read-only lookups; every public method is one SPARQL query."""

    def __init__(
        self,
        store: GraphStore,
        *,
        hidden_graphs: Callable[[], frozenset[str]] = frozenset,
        timeout_s: float = 30.0,
    ) -> None:
        self._store = store
        self._hidden = hidden_graphs
        self._timeout_s = timeout_s

    def _select(self, query: str) -> list[list[str | None]]:
        """Rows as plain strings, built on the calling thread (pyoxigraph results must not
        cross threads)."""
        hidden = self._hidden()
        default_graphs = (
            [g for g in self._store.graph_names() if g not in hidden] if hidden else None
        )
        result = self._store.query(
            query,
            union_default=default_graphs is None,
            default_graphs=default_graphs,
            named_graphs=default_graphs,
            timeout_s=self._timeout_s,
        )
        return [
            [None if term is None else term.value for term in solution]
            for solution in result  # type: ignore[union-attr]
        ]

    # -- describe ------------------------------------------------------------------------

    def describe(self, iris: Sequence[str]) -> dict[str, EntityRecord]:
        """Classes, labels, tags, units and external references of each IRI."""
        if not iris:
            return {}
        rows = self._select(
            f"SELECT ?s ?k ?o ?r ?rp WHERE {{ {_values('s', iris)}\n {_DESCRIBE} }}"
        )
        records = _records(rows)
        return {iri: records.get(iri) or EntityRecord(iri) for iri in iris}

    def classes(self, iris: Sequence[str]) -> dict[str, frozenset[str]]:
        """Every class of each IRI (asserted and materialised superclasses)."""
        if not iris:
            return {}
        out: dict[str, set[str]] = {iri: set() for iri in iris}
        for s, o in self._select(f"SELECT ?s ?o WHERE {{ {_values('s', iris)} ?s a ?o }}"):
            if s is not None and o is not None:
                out.setdefault(s, set()).add(o)
        return {k: frozenset(v) for k, v in out.items()}

    def find(
        self,
        *,
        classes: Sequence[str] = (),
        within: str | None = None,
        where: EntityFilter | None = None,
        after: str | None = None,
        first: int = 100,
        light: bool = False,
    ) -> Page:
        """Entities of any of ``classes`` inside ``within``, ordered by IRI, after a cursor.

        Every match is read and ordered here, then cut to the page; the full description
        is a second query for the page. With
        ``light``, records hold only their kinds and external references (no labels,
        tags, units or level numbers) and their references only a time series id each:
        for callers that need no more, at a third of the cost. Unlike the full
        description, every matched entity is kept, described or not.
        """
        patterns = []
        if classes:
            patterns.append(f"{_values('c', classes)} ?s a ?c .")
        else:
            patterns.append(
                "GRAPH ?g { ?s a ?c } "
                f'FILTER(!STRSTARTS(STR(?g), "{ONTOLOGY_GRAPH_PREFIX}") && '
                f'!STRSTARTS(STR(?g), "{INFERRED_GRAPH_PREFIX}") && '
                f'!STRSTARTS(STR(?g), "{STAGING_GRAPH_PREFIX}"))'
            )
        if within is not None:
            patterns.append(f"?s ({WITHIN_PATH})+ {_iri(within)} .")
        where = where or EntityFilter()
        if where.label_contains:
            needle = str(Literal(where.label_contains.lower()))
            patterns.append(
                f"FILTER EXISTS {{ ?s <{RDFS}label> ?l FILTER(CONTAINS(LCASE(STR(?l)), {needle})) }}"
            )
        for tag in where.tags:
            patterns.append(f"FILTER EXISTS {{ ?s <{BRICK}hasTag> {_iri(tag)} }}")
        if after is not None:
            patterns.append(f"FILTER(STR(?s) > {Literal(after)})")
        patterns.append("FILTER(isIRI(?s))")
        # Ordered and cut here, not with ORDER BY/LIMIT: Oxigraph compares IRIs by looking
        # their strings up for every comparison (60 ms to order 1,000 points, growing with
        # n log n), while the unordered match is a scan (6 ms). Python orders IRIs by code
        # point, as SPARQL orders them (and as the STR(?s) > after cursor compares).
        match = f"SELECT DISTINCT ?s WHERE {{ {' '.join(patterns)} }}"
        if light:
            # A light description is a row or two per entity: read it for every match in
            # the same query (cheaper than a second query naming the page's IRIs).
            kinds = "" if list(classes) == [BRICK + "Point"] else _LIGHT_KINDS
            rows = self._select(
                f"SELECT ?s ?o ?r ?ts WHERE {{ {{ {match} }}\n {kinds} {_LIGHT_TS} }}"
            )
            # Whatever else they are, entities matched as brick:Point are points.
            described = _light_records(
                rows, frozenset({BRICK + "Point"}) if not kinds else frozenset()
            )
            page = sorted(described)[: first + 1]
            records = {iri: described[iri] for iri in page}
        else:
            page = sorted(s for (s,) in self._select(match) if s is not None)[: first + 1]
            if not page:
                return Page([], False)
            rows = self._select(
                f"SELECT ?s ?k ?o ?r ?rp WHERE {{ {_values('s', page)}\n {_DESCRIBE} }}"
            )
            records = _records(rows)
        ordered = [records[k] for k in sorted(records)]
        return Page(ordered[:first], len(ordered) > first)

    # -- relationships -------------------------------------------------------------------

    def relations(self, iris: Sequence[str]) -> dict[str, dict[str, list[str]]]:
        """For each IRI, relationship name -> related IRIs (both directions read)."""
        if not iris:
            return {}
        preds = _values("p", _ALL_RELATION_PREDICATES)
        rows = self._select(
            f"SELECT ?s ?p ?o ?inv WHERE {{ {_values('s', iris)}\n"
            f"  {{ {preds} ?s ?p ?o BIND(false AS ?inv) }}\n"
            f"  UNION {{ {preds} ?o ?p ?s BIND(true AS ?inv) }}\n"
            "  FILTER(isIRI(?o)) }"
        )
        edges: dict[str, dict[str, set[tuple[str, bool]]]] = {}
        for s, p, o, inv in rows:
            assert s is not None and p is not None and o is not None
            edges.setdefault(s, {}).setdefault(p, set()).add((o, inv == "true"))
        out: dict[str, dict[str, list[str]]] = {}
        for iri in iris:
            found = edges.get(iri, {})
            rels: dict[str, list[str]] = {}
            for name, (forward, inverse) in RELATIONS.items():
                related = {o for p in forward for o, inv in found.get(p, ()) if not inv}
                related |= {o for p in inverse for o, inv in found.get(p, ()) if inv}
                rels[name] = sorted(related)
            out[iri] = rels
        return out

    def points_within(self, pairs: Sequence[tuple[str, str]]) -> dict[tuple[str, str], list[str]]:
        """For each (container, class): the entities of that class inside the container."""
        if not pairs:
            return {}
        values = " ".join(f"({_iri(w)} {_iri(c)})" for w, c in pairs)
        rows = self._select(
            f"SELECT DISTINCT ?w ?c ?p WHERE {{ VALUES (?w ?c) {{ {values} }}\n"
            f"  ?p a ?c . ?p ({WITHIN_PATH})+ ?w . FILTER(isIRI(?p)) }}"
        )
        out: dict[tuple[str, str], list[str]] = {pair: [] for pair in pairs}
        for w, c, p in rows:
            assert w is not None and c is not None and p is not None
            out.setdefault((w, c), []).append(p)
        return {k: sorted(v) for k, v in out.items()}


def _records(rows: list[list[str | None]]) -> dict[str, EntityRecord]:
    builders: dict[str, _Builder] = {}
    for s, k, o, r, rp in rows:
        if s is None or o is None:
            continue
        b = builders.get(s)
        if b is None:
            b = builders[s] = _Builder()
        if k == "type":
            b.classes.add(o)
        elif k == "label":
            b.labels.append(o)
        elif k == "tag":
            b.tags.append(o)
        elif k == "unit":
            b.units.append(o)
        elif k == "level":
            with contextlib.suppress(ValueError):
                b.level = int(o)
        elif k == "ref" and r is not None and rp is not None:
            b.refs.setdefault(r, {}).setdefault(rp, []).append(o)
    return {iri: b.build(iri) for iri, b in builders.items()}


def _light_records(
    rows: list[list[str | None]], known: frozenset[str] = frozenset()
) -> dict[str, EntityRecord]:
    """Records from the light description's rows (s, kind, reference, time series id);
    ``known`` are kinds every record has."""
    kinds: dict[str, set[str]] = {}
    refs: dict[str, dict[str, set[str]]] = {}
    for s, kind, r, ts in rows:
        if s is None:
            continue
        found = kinds.get(s)
        if found is None:
            found = kinds[s] = set(known)
            refs[s] = {}
        if kind is not None:
            found.add(kind)
        if r is not None and ts is not None:
            refs[s].setdefault(r, set()).add(ts)
    return {
        iri: EntityRecord(
            iri,
            kinds=frozenset(kinds[iri]),
            external_refs=tuple(
                sorted(
                    (
                        ExternalRef(None, tuple(sorted((_TS_ID, t) for t in ids)))
                        for ids in r.values()
                    ),
                    key=lambda ref: ref.properties,
                )
            ),
        )
        for iri, r in refs.items()
    }
