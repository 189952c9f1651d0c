"""The model as of a time T: an in-memory store rebuilt from today's graphs and revisions.

Start from the current model graphs, undo every revision after T (newest first), add the
ontologies and recompute inferred types, and load the result into an in-memory pyoxigraph
store that queries run against exactly as against the live one. Copying the ontologies
dominates a build, so a spare ontology-only store is prepared in the background after
each build, and the next moment asked about only costs its models. When no revision is
newer than T the live store is the answer. Views are cached by (revision at T, newest
revision), so repeated questions about the same moment cost one build.

Limits: a graph's blank nodes are compared by label; the embedded store keeps labels,
while a remote Oxigraph server relabels blank nodes it receives, so with a remote store a
revision that removed blank-node triples cannot be undone exactly.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime

from pyoxigraph import NamedNode, Quad, RdfFormat, parse

from app.domain.iris import inferred_graph_for, is_managed_graph
from app.graph.embedded import EmbeddedStore
from app.graph.inference import inferred_types
from app.graph.ontology import ClassHierarchy, loaded_hashes
from app.graph.store import GraphStore
from app.history.revisions import RevisionStore


class AsOfViews:
    def __init__(
        self,
        *,
        store: GraphStore,
        revisions: RevisionStore,
        hierarchy: ClassHierarchy,
        write_lock: AbstractContextManager[object] | None = None,
        cache_size: int = 2,
    ) -> None:
        self._write_lock: AbstractContextManager[object] = write_lock or nullcontext()
        self._store = store
        self._revisions = revisions
        self._hierarchy = hierarchy
        self._cache: OrderedDict[tuple[int, int], EmbeddedStore] = OrderedDict()
        self._cache_size = cache_size
        self._ontology: tuple[dict[str, str], dict[str, bytes]] | None = None
        self._lock = threading.Lock()
        self._spare: tuple[dict[str, bytes], EmbeddedStore] | None = None
        self._spare_lock = threading.Lock()
        self._spare_thread: threading.Thread | None = None

    def store_at(self, when: datetime) -> tuple[GraphStore, int]:
        """The store as it was at ``when`` and the id of the revision in force then."""
        at = self._revisions.latest_id(until=when)
        head = self._revisions.latest_id()
        if at == head:
            return self._store, at
        with self._lock:
            key = (at, head)
            view = self._cache.get(key)
            if view is None:
                view = self._build(at)
                self._cache[key] = view
                while len(self._cache) > self._cache_size:
                    # Not closed: a query may still run on it; memory goes with the last user.
                    self._cache.popitem(last=False)
            self._cache.move_to_end(key)
            return view, at

    def graphs_at(self, revision_id: int) -> dict[str, set[bytes]]:
        """Each model graph's N-Triples lines once revision ``revision_id`` was applied."""
        # The graphs and the revisions that explain them are read under the model write
        # lock (revisions are recorded under it): a write cannot fall in between.
        with self._write_lock:
            lines = {
                g: set(self._store.dump(g, RdfFormat.N_TRIPLES).splitlines())
                for g in self._store.graph_names()
                if not is_managed_graph(g)
            }
            changes = self._revisions.changes_after(revision_id)
        for _rid, g, added, removed in changes:
            current = lines.setdefault(g, set())
            current.difference_update(added)
            current.update(removed)
        return {g: v for g, v in lines.items() if v}

    def _build(self, revision_id: int) -> EmbeddedStore:
        view = self._take_base()
        quads: list[Quad] = []
        for g, lines in self.graphs_at(revision_id).items():
            graph, inferred = NamedNode(g), NamedNode(inferred_graph_for(g))
            triples = [q.triple for q in parse(b"\n".join(lines), format=RdfFormat.N_TRIPLES)]
            quads += [Quad(t.subject, t.predicate, t.object, graph) for t in triples]
            quads += [
                Quad(t.subject, t.predicate, t.object, inferred)
                for t in inferred_types(triples, self._hierarchy)
            ]
        view.raw.extend(quads)
        return view

    def _take_base(self) -> EmbeddedStore:
        """An in-memory store holding just the ontologies: the spare one built in the
        background after the last view (copying ~160k ontology triples is most of a
        build), or a new one; either way a spare for the next view is started."""
        dumps = self._ontology_dumps()
        with self._spare_lock:
            spare, self._spare = self._spare, None
        base = spare[1] if spare is not None and spare[0] is dumps else self._new_base(dumps)
        self._start_spare(dumps)
        return base

    @staticmethod
    def _new_base(dumps: dict[str, bytes]) -> EmbeddedStore:
        base = EmbeddedStore.in_memory()
        for g, data in dumps.items():  # parsed and inserted in Rust, no Python objects
            base.raw.load(data, format=RdfFormat.N_TRIPLES, to_graph=NamedNode(g))
        return base

    def _start_spare(self, dumps: dict[str, bytes]) -> None:
        with self._spare_lock:
            if self._spare_thread is not None and self._spare_thread.is_alive():
                return

            def build() -> None:
                base = self._new_base(dumps)
                with self._spare_lock:
                    self._spare = (dumps, base)

            self._spare_thread = threading.Thread(target=build, name="asof-spare", daemon=True)
            self._spare_thread.start()

    def _ontology_dumps(self) -> dict[str, bytes]:
        # Ontology graphs change only by a reload, which rewrites their hash markers.
        hashes = loaded_hashes(self._store)
        if self._ontology is None or self._ontology[0] != hashes:
            dumps = {g: self._store.dump(g, RdfFormat.N_TRIPLES) for g in hashes}
            self._ontology = (hashes, dumps)
        return self._ontology[1]

    def close(self) -> None:
        with self._lock:
            self._cache.clear()
            self._ontology = None
        with self._spare_lock:
            self._spare = None
