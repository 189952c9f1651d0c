"""The model graphs as Haystack entities: sites, spaces, equipment and points with tags.

Contract:

- An entity ingested from Haystack (it carries ``hs:tags``) is served with exactly its
  original record: id, tags and refs as they came in. Edits made afterwards on the Brick
  side do not rewrite those tags.
- Any other site (``rec:Site``/``brick:Site``, or a building that is not part of one),
  space (``rec:Space``/``brick:Location``), equipment or point gets tags derived from its
  Brick classes (see ``tags``), ``dis`` from ``rdfs:label``, ``unit`` from ``brick:hasUnit``,
  an id that is a hash of its IRI (stable across restarts), and ``siteRef``/``spaceRef``/
  ``equipRef`` from Brick/REC relationships (``isPointOf``, ``isPartOf``, ``hasLocation``
  and their inverses). A building that is part of a site is folded into the site.
- Every point is ``his``: its readings are those stored under its time-series UUID (the
  point directory's key for its IRI).

The view is rebuilt when a model changes (and, with a remote store another process may
write, when it is older than ``max_age_s``). Live values (``curVal``) are added per request.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from app.api.haystack import tags as derive
from app.domain.iris import BRICK, RDF_TYPE, RDFS, REC, inferred_graph_for, is_managed_graph
from app.graph.ontology import ClassHierarchy
from app.graph.store import GraphStore
from app.points import PointDirectory
from ingest.haystack.json_formats import decode_hayson
from ingest.haystack.mapping import HS, kind_of
from ingest.haystack.values import MARKER, Record, Ref

_HS_TAGS = HS + "tags"
_HS_ID = HS + "id"
_KIND_CLASSES = {
    BRICK + "Point": "point",
    BRICK + "Equipment": "equip",
    REC + "Site": "site",
    BRICK + "Site": "site",
    REC + "Building": "building",
    BRICK + "Building": "building",
    REC + "Space": "space",
    BRICK + "Location": "space",
}
_KIND_ORDER = ("point", "equip", "site", "building", "space")
_POINT_OF = (BRICK + "isPointOf", BRICK + "hasPoint")
_PART_OF = (BRICK + "isPartOf", BRICK + "hasPart", REC + "isPartOf", REC + "hasPart")
_LOCATED = (BRICK + "hasLocation", BRICK + "isLocationOf", REC + "locatedIn")
_INVERSE = {BRICK + "hasPoint", BRICK + "hasPart", REC + "hasPart", BRICK + "isLocationOf"}
_UNIT = BRICK + "hasUnit"
_LABEL = RDFS + "label"
_BOOL_TAGS = frozenset({"Status", "Alarm", "Enable", "Command", "Occupancy", "Run"})


def derived_id(iri: str) -> str:
    """A Haystack id for an entity that has none: 80 bits of the IRI's SHA-256."""
    return "tg-" + hashlib.sha256(iri.encode()).hexdigest()[:20]


@dataclass(slots=True)
class Entity:
    iri: str
    id: str
    kind: str
    tags: Record
    #: The time-series UUID of a point; None for other entities.
    point: uuid.UUID | None = None

    @property
    def unit(self) -> str | None:
        unit = self.tags.get("unit")
        return unit if isinstance(unit, str) else None

    @property
    def tz(self) -> str | None:
        tz = self.tags.get("tz")
        return tz if isinstance(tz, str) else None


@dataclass(slots=True)
class HaystackView:
    entities: list[Entity]
    by_id: dict[str, Entity] = field(default_factory=dict)
    #: Haystack ids claimed by two entities; the second one got a derived id.
    conflicts: list[tuple[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.by_id = {e.id: e for e in self.entities}

    def record(self, hid: str) -> Record | None:
        e = self.by_id.get(hid)
        return e.tags if e else None


class _Builder:
    def __init__(
        self, store: GraphStore, points: PointDirectory, hierarchy: ClassHierarchy
    ) -> None:
        self.store = store
        self.points = points
        self.hierarchy = hierarchy
        names = store.graph_names()
        self.models = [g for g in names if not is_managed_graph(g)]
        self.with_inferred = self.models + [
            g for g in (inferred_graph_for(m) for m in self.models) if g in set(names)
        ]

    def build(self) -> HaystackView:
        if not self.models:
            return HaystackView([])
        point_uuids = {ref.point: ref.uuid for ref in self.points.all()}
        tagged = self._tagged()
        kinds = self._native_kinds(set(tagged))
        facts = self._facts()
        entities: list[Entity] = []
        used: dict[str, str] = {}
        conflicts: list[tuple[str, str]] = []
        for iri in sorted(tagged):
            hid, record = tagged[iri]
            if hid in used:
                conflicts.append((hid, iri))
                hid = derived_id(iri)
                record = {**record, "id": Ref(hid, _dis(record))}
            used[hid] = iri
            kind = kind_of(record) or "other"
            entities.append(Entity(iri, hid, kind, record, point_uuids.get(iri)))
        ids = {iri: hid for hid, iri in used.items()}
        labels = {iri: _dis(rec) for iri, (_h, rec) in tagged.items()}
        tagged_kinds = {e.iri: e.kind for e in entities}
        natives = _Natives(
            kinds, facts, self.hierarchy, ids, labels, tagged_kinds, self._class_tags()
        )
        for iri in sorted(kinds):
            entity = natives.entity(iri, point_uuids.get(iri))
            if entity is not None:
                entities.append(entity)
        entities.sort(key=lambda e: e.id)
        return HaystackView(entities, conflicts=conflicts)

    def _query(
        self, sparql: str, graphs: list[str], names: tuple[str, ...]
    ) -> Iterable[dict[str, str | None]]:
        res = self.store.query(sparql, default_graphs=graphs)
        for row in res:  # type: ignore[union-attr]
            yield {k: (row[k].value if row[k] is not None else None) for k in names}

    def _tagged(self) -> dict[str, tuple[str, Record]]:
        out: dict[str, tuple[str, Record]] = {}
        rows = self._query(
            f"SELECT ?s ?o ?id WHERE {{ ?s <{_HS_TAGS}> ?o OPTIONAL {{ ?s <{_HS_ID}> ?id }} }}"
            " ORDER BY ?s ?o",
            self.models,
            ("s", "o", "id"),
        )
        for row in rows:
            iri, text = row["s"], row["o"]
            if iri is None or text is None or iri in out:
                continue
            try:
                doc = json.loads(text)
                record = {k: decode_hayson(v) for k, v in doc.items()}
            except (ValueError, TypeError):
                continue
            rid = record.get("id")
            hid = row.get("id") or (rid.id if isinstance(rid, Ref) else None)
            if hid:
                out[iri] = (hid, record)
        return out

    def _native_kinds(self, tagged: set[str]) -> dict[str, str]:
        values = " ".join(f"<{c}>" for c in _KIND_CLASSES)
        rows = self._query(
            f"SELECT ?s ?k WHERE {{ VALUES ?k {{ {values} }} ?s a ?k FILTER(isIRI(?s)) }}",
            self.with_inferred,
            ("s", "k"),
        )
        found: dict[str, set[str]] = {}
        for row in rows:
            s, k = row["s"], row["k"]
            if s and k and s not in tagged:
                found.setdefault(s, set()).add(_KIND_CLASSES[k])
        return {s: next(k for k in _KIND_ORDER if k in kinds) for s, kinds in found.items()}

    def _facts(self) -> dict[str, dict[str, list[str]]]:
        preds = (RDF_TYPE, _LABEL, _UNIT, *_POINT_OF, *_PART_OF, *_LOCATED)
        values = " ".join(f"<{p}>" for p in preds)
        facts: dict[str, dict[str, list[str]]] = {}
        for row in self._query(
            f"SELECT ?s ?p ?o WHERE {{ VALUES ?p {{ {values} }} ?s ?p ?o FILTER(isIRI(?s)) }}",
            self.models,
            ("s", "p", "o"),
        ):
            s, p, o = row["s"], row["p"], row["o"]
            if s is None or p is None or o is None:
                continue
            if p in _INVERSE:  # store every relation child -> parent
                s, o = o, s
                p = {
                    BRICK + "hasPoint": _POINT_OF[0],
                    BRICK + "hasPart": _PART_OF[0],
                    REC + "hasPart": _PART_OF[0],
                    BRICK + "isLocationOf": _LOCATED[0],
                }[p]
            elif p in _PART_OF:
                p = _PART_OF[0]
            elif p in _LOCATED:
                p = _LOCATED[0]
            bucket = facts.setdefault(s, {}).setdefault(p, [])
            if o not in bucket:
                bucket.append(o)
        for preds_of in facts.values():
            for values_list in preds_of.values():
                values_list.sort()
        return facts

    def _class_tags(self) -> dict[str, frozenset[str]]:
        res = self.store.query(
            f"SELECT ?c ?t WHERE {{ ?c <{BRICK}hasAssociatedTag> ?t }}", union_default=True
        )
        out: dict[str, set[str]] = {}
        for row in res:  # type: ignore[union-attr]
            out.setdefault(row["c"].value, set()).add(row["t"].value.rsplit("#", 1)[-1])
        return {c: frozenset(t) for c, t in out.items()}


def _dis(record: Record) -> str | None:
    dis = record.get("dis") or record.get("navName")
    if isinstance(dis, str):
        return dis
    rid = record.get("id")
    return rid.dis if isinstance(rid, Ref) else None


def _local_name(iri: str) -> str:
    for sep in ("#", "/", ":"):
        if sep in iri.rstrip(sep):
            return iri.rstrip(sep).rsplit(sep, 1)[-1]
    return iri


class _Natives:
    """Tags of entities that carry no Haystack record."""

    def __init__(
        self,
        kinds: dict[str, str],
        facts: dict[str, dict[str, list[str]]],
        hierarchy: ClassHierarchy,
        tagged_ids: dict[str, str],
        tagged_labels: dict[str, str | None],
        tagged_kinds: dict[str, str],
        class_tags: dict[str, frozenset[str]],
    ) -> None:
        self.kinds = dict(kinds)
        self.facts = facts
        self.hierarchy = hierarchy
        self.class_tags = class_tags
        self.ids = dict(tagged_ids)
        self.labels: dict[str, str | None] = dict(tagged_labels)
        # Haystack-ingested entities take part in refs with their own kinds.
        self.tagged_kind = tagged_kinds
        # A building inside a site is the site, for Haystack.
        self.folded: dict[str, str] = {}
        for iri, kind in kinds.items():
            if kind == "building":
                site = next(
                    (p for p in self._rel(iri, _PART_OF[0]) if self._kind(p) == "site"), None
                )
                if site is not None:
                    self.folded[iri] = site
                else:
                    self.kinds[iri] = "site"
        for iri in self.kinds:
            if iri not in self.folded:
                self.ids[iri] = derived_id(iri)
                self.labels[iri] = self._label(iri)

    def _rel(self, iri: str, pred: str) -> list[str]:
        return self.facts.get(iri, {}).get(pred, [])

    def _kind(self, iri: str) -> str | None:
        return self.kinds.get(iri) or self.tagged_kind.get(iri)

    def _label(self, iri: str) -> str:
        labels = self._rel(iri, _LABEL)
        return labels[0] if labels else _local_name(iri)

    def _ref(self, iri: str) -> Ref | None:
        iri = self.folded.get(iri, iri)
        hid = self.ids.get(iri)
        return Ref(hid, self.labels.get(iri)) if hid else None

    def _first(self, iri: str, pred: str, *kinds: str) -> str | None:
        for target in self._rel(iri, pred):
            target = self.folded.get(target, target)
            if self._kind(target) in kinds and target in self.ids:
                return target
        return None

    def _site(self, iri: str) -> str | None:
        seen = {iri}
        frontier = [iri]
        while frontier:
            nxt: list[str] = []
            for node in frontier:
                for pred in (_POINT_OF[0], _PART_OF[0], _LOCATED[0]):
                    for target in self._rel(node, pred):
                        target = self.folded.get(target, target)
                        if target in seen:
                            continue
                        if self._kind(target) == "site" and target in self.ids:
                            return target
                        seen.add(target)
                        nxt.append(target)
            frontier = nxt
        return None

    def entity(self, iri: str, point: uuid.UUID | None) -> Entity | None:
        if iri in self.folded:
            return None
        kind = self.kinds[iri]
        hid = self.ids[iri]
        classes = [c for c in self._rel(iri, RDF_TYPE)]
        tags: Record = {"id": Ref(hid, self.labels[iri]), "dis": self.labels[iri] or hid}
        markers: set[str] = {kind}
        refs: dict[str, str | None] = {}
        if kind == "point":
            ctags: set[str] = set()
            for c in classes:
                ctags |= self.class_tags.get(c, frozenset())
            markers |= derive.point_markers(ctags) | {"his"}
            units = [u for u in (derive.unit_symbol(x) for x in self._rel(iri, _UNIT)) if u]
            if units:
                tags["unit"] = units[0]
            tags["kind"] = "Bool" if not units and ctags & _BOOL_TAGS else "Number"
            tags["tz"] = "UTC"
            refs["equipRef"] = self._first(iri, _POINT_OF[0], "equip")
            refs["spaceRef"] = self._first(iri, _POINT_OF[0], "space") or self._first(
                iri, _LOCATED[0], "space"
            )
        elif kind == "equip":
            markers |= derive.equip_markers(classes, self.hierarchy, self.class_tags)
            refs["equipRef"] = self._first(iri, _PART_OF[0], "equip")
            refs["spaceRef"] = self._first(iri, _LOCATED[0], "space")
        elif kind == "space":
            markers |= derive.space_markers(classes, self.hierarchy)
            refs["spaceRef"] = self._first(iri, _PART_OF[0], "space")
        elif kind == "site":
            tags["tz"] = "UTC"
        if kind != "site":
            refs["siteRef"] = self._site(iri)
        for name, target in refs.items():
            if target is not None and target != iri:
                ref = self._ref(target)
                if ref is not None:
                    tags[name] = ref
        for m in sorted(markers):
            tags.setdefault(m, MARKER)
        return Entity(iri, hid, kind, tags, point if kind == "point" else None)


class ViewCache:
    """The current view; rebuilt when models change or (remote store) when it is stale."""

    def __init__(
        self,
        store: GraphStore,
        points: PointDirectory,
        hierarchy: ClassHierarchy,
        *,
        version: Callable[[], int],
        max_age_s: float | None = None,
    ) -> None:
        self._store = store
        self._points = points
        self._hierarchy = hierarchy
        self._version = version
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._built: tuple[int, float, HaystackView] | None = None

    def current(self) -> HaystackView:
        version = self._version()
        built = self._built
        if built is not None and built[0] == version and not self._stale(built[1]):
            return built[2]
        with self._lock:
            built = self._built
            if built is not None and built[0] == version and not self._stale(built[1]):
                return built[2]
            view = _Builder(self._store, self._points, self._hierarchy).build()
            self._built = (version, time.monotonic(), view)
            return view

    def _stale(self, built_at: float) -> bool:
        return self._max_age_s is not None and time.monotonic() - built_at > self._max_age_s
