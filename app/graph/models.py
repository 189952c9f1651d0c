"""Model graphs: validated, atomic ingest; export; deletion; validated SPARQL updates.

Every write path ends here: CLI ingest, the Graph Store Protocol, SPARQL Update, GraphQL
mutations and the ingest jobs. The order is always parse -> (migrate) -> validate -> commit,
and a rejected or failed write leaves the store exactly as it was.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from pyoxigraph import DefaultGraph, NamedNode, Quad, RdfFormat, Triple, parse

from app.domain.iris import SYSTEM_GRAPH, inferred_graph_for, is_managed_graph
from app.domain.validation import ValidationReport, ValidationResult
from app.errors import (
    AppError,
    ForbiddenError,
    InvalidInputError,
    NotFoundError,
    ValidationFailedError,
)
from app.graph.inference import inferred_types
from app.graph.migration import MigrationReport, detect_legacy, migrate
from app.graph.ontology import ClassHierarchy
from app.graph.rdf_io import parse_triples
from app.graph.store import GraphStore

Mode = Literal["replace", "merge"]
#: New models at least this large are bulk-loaded (see ModelService._bulk_commit).
BULK_MIN_QUADS = 100_000
LOADING = "urn:twingraph:loading"
_MANAGED_IRI = re.compile(r"urn:twingraph:(?:ontology|inferred|staging|system)", re.IGNORECASE)
#: The store's default graph, where it must be named (it has no IRI).
DEFAULT_GRAPH = ""


class ModelValidator(Protocol):
    def validate(self, triples: Sequence[Triple]) -> ValidationReport: ...

    def validate_delta(
        self,
        *,
        added: Sequence[Triple],
        removed: Sequence[Triple],
        fetch: Callable[[Sequence[str]], Sequence[Triple]],
    ) -> ValidationReport: ...


@dataclass(slots=True)
class IngestResult:
    graph: str
    mode: Mode
    triples_in: int
    graph_triples: int
    inferred_triples: int
    report: ValidationReport | None
    migration: MigrationReport | None = None
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "graph": self.graph,
            "mode": self.mode,
            "triples_in": self.triples_in,
            "graph_triples": self.graph_triples,
            "inferred_triples": self.inferred_triples,
            "validation": self.report.as_dict() if self.report else None,
            "migration": self.migration.as_dict() if self.migration else None,
            "notes": self.notes,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


@dataclass(frozen=True, slots=True)
class GraphInfo:
    iri: str
    triples: int
    kind: str  # model | ontology | inferred | system


@dataclass(frozen=True, slots=True)
class ModelChange:
    """A committed change to one model graph, as N-Triples lines (the revision's diff)."""

    graph: str
    operation: str  # replace | merge | update | delete
    added: Sequence[bytes]
    removed: Sequence[bytes]
    author: str | None


class ModelListener(Protocol):
    """Told about every model write (revisions, events). Called under the write lock,
    after the store committed (``committed``) or after a write was refused (``rejected``)."""

    def committed(self, change: ModelChange) -> None: ...

    def rejected(
        self, *, graph: str | None, operation: str, error: AppError, author: str | None
    ) -> None: ...


@dataclass(slots=True)
class UpdateResult:
    changed: dict[str, tuple[int, int]]  # graph -> (added, removed)
    report: ValidationReport | None


class ModelService:
    def __init__(
        self,
        *,
        store: GraphStore,
        validator: ModelValidator | None,
        hierarchy: ClassHierarchy,
        replaced_by: Mapping[str, str],
    ) -> None:
        self.store = store
        self.validator = validator
        self.hierarchy = hierarchy
        self.replaced_by = dict(replaced_by)
        self._write_lock = threading.RLock()
        #: Held by every write (and its listeners); readers that need a consistent
        #: moment across the store and the revision log take it too.
        self.write_lock = self._write_lock
        #: Bumped by every committed change, so caches derived from models can tell.
        self.version = 0
        self._loading: set[str] = set()
        #: Called when an update slipped past the textual check and changed an ontology;
        #: the platform reloads ontologies from their files.
        self.on_ontology_tampered: Callable[[], None] = lambda: None
        #: Revisions and events; diffs are only computed when someone listens.
        self.listeners: list[ModelListener] = []

    # -- reading -----------------------------------------------------------------------

    def graphs(self) -> list[GraphInfo]:
        out = []
        hidden = self.hidden_graphs()
        for iri, n in sorted(self.store.graph_sizes().items()):
            if iri in hidden:
                continue
            if iri.startswith("urn:twingraph:ontology:"):
                kind = "ontology"
            elif iri.startswith("urn:twingraph:inferred:"):
                kind = "inferred"
            elif is_managed_graph(iri):
                kind = "system"
            else:
                kind = "model"
            out.append(GraphInfo(iri, n, kind))
        return out

    def export(self, graph: str, fmt: RdfFormat) -> bytes:
        if graph != DEFAULT_GRAPH and (
            graph not in self.store.graph_names() or graph in self._loading
        ):
            raise NotFoundError(f"No graph named <{graph}>", code="graph_not_found")
        return self.store.dump(graph, fmt)

    def triple_count(self, graph: str) -> int:
        res = self.store.query(
            f"SELECT (COUNT(*) AS ?n) WHERE {{ GRAPH <{graph}> {{ ?s ?p ?o }} }}",
            union_default=False,
        )
        return int(next(iter(res))["n"].value)  # type: ignore[arg-type]

    # -- validation --------------------------------------------------------------------

    def parse(
        self,
        data: bytes,
        fmt: RdfFormat,
        *,
        lenient: bool = False,
        migrate_legacy: bool = False,
        base_iri: str | None = None,
        source: str = "input",
    ) -> tuple[list[Triple], MigrationReport | None, list[str]]:
        triples = parse_triples(data, fmt, lenient=lenient, base_iri=base_iri, source=source)
        notes: list[str] = []
        if migrate_legacy:
            triples, report = migrate(
                triples, replaced_by=self.replaced_by, is_known_class=self.hierarchy.known
            )
            return triples, report, notes
        legacy = detect_legacy(triples)
        if legacy:
            notes.append(
                "Uses outdated Brick namespaces "
                + ", ".join(f"{ns} ({n} uses)" for ns, n in legacy.most_common())
                + ": Brick's shapes do not apply to those terms; ingest with migrate to "
                "rewrite them to current Brick."
            )
        return triples, None, notes

    def validate(self, triples: Sequence[Triple]) -> ValidationReport:
        if self.validator is None:
            return ValidationReport(engine="none", notes=("validation is switched off",))
        return self.validator.validate(triples)

    # -- writing -----------------------------------------------------------------------

    def ingest(
        self,
        *,
        graph: str,
        data: bytes,
        fmt: RdfFormat,
        mode: Mode = "replace",
        lenient: bool = False,
        validate: bool = True,
        migrate_legacy: bool = False,
        base_iri: str | None = None,
        source: str = "input",
        author: str | None = None,
    ) -> IngestResult:
        t0 = time.perf_counter()
        try:
            triples, migration, notes = self.parse(
                data,
                fmt,
                lenient=lenient,
                migrate_legacy=migrate_legacy,
                base_iri=base_iri,
                source=source,
            )
        except AppError as exc:
            self._rejected(graph, mode, exc, author)
            raise
        result = self.ingest_triples(
            graph=graph, triples=triples, mode=mode, validate=validate, author=author
        )
        result.migration = migration
        result.notes[:0] = notes
        result.timings["parse"] = result.timings.get("parse", 0.0) + (
            time.perf_counter() - t0 - sum(result.timings.values())
        )
        return result

    def ingest_triples(
        self,
        *,
        graph: str,
        triples: Sequence[Triple],
        mode: Mode = "replace",
        validate: bool = True,
        author: str | None = None,
    ) -> IngestResult:
        try:
            _check_model_graph(graph)
        except AppError as exc:
            self._rejected(graph, mode, exc, author)
            raise
        timings: dict[str, float] = {}
        with self._write_lock:
            exists = graph in self.store.graph_names()
            report: ValidationReport | None = None
            before = self._lines(graph) if self.listeners and exists else set()
            new_lines = {_nt(t) for t in triples} if self.listeners else set()
            if self.listeners and exists and _same_graph(before, new_lines, mode):
                return IngestResult(
                    graph=graph,
                    mode=mode,
                    triples_in=len(triples),
                    graph_triples=len(before),
                    inferred_triples=0,
                    report=None,
                    notes=["unchanged: the graph already holds exactly this model"],
                    timings=timings,
                )
            t0 = time.perf_counter()
            if validate and self.validator is not None:
                if mode == "merge" and exists:
                    report = self.validator.validate_delta(
                        added=triples, removed=(), fetch=self._fetcher(graph, extra=triples)
                    )
                else:
                    report = self.validator.validate(triples)
                timings["validate"] = time.perf_counter() - t0
                if not report.conforms:
                    error = ValidationFailedError(
                        f"The model for <{graph}> has {len(report.violations)} SHACL "
                        "violation(s); nothing was stored.",
                        report=report.as_dict(),
                    )
                    self._rejected(graph, mode, error, author)
                    raise error
            t1 = time.perf_counter()
            inferred = inferred_types(triples, self.hierarchy)
            timings["infer"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            self._commit(graph, triples, inferred, replace=(mode == "replace"))
            self.version += 1
            timings["commit"] = time.perf_counter() - t2
            size = self.triple_count(graph)
            if self.listeners:
                # What the graph now holds: known without reading it back, unless blank
                # nodes came in (a SPARQL INSERT DATA, or a remote server, relabels them).
                if not any(b"_:" in n for n in new_lines):
                    after = new_lines if mode == "replace" else before | new_lines
                else:
                    after = self._lines(graph)
                self._committed(
                    ModelChange(
                        graph, mode, sorted(after - before), sorted(before - after), author
                    )
                )
        notes = [] if validate else ["validation skipped on request"]
        return IngestResult(
            graph=graph,
            mode=mode,
            triples_in=len(triples),
            graph_triples=size,
            inferred_triples=len(inferred),
            report=report,
            notes=notes,
            timings=timings,
        )

    def delete(self, graph: str, *, author: str | None = None) -> None:
        _check_model_graph(graph)
        with self._write_lock:
            if graph not in self.store.graph_names():
                raise NotFoundError(f"No graph named <{graph}>", code="graph_not_found")
            before = self._lines(graph) if self.listeners else set()
            self.store.update(
                f"DROP GRAPH <{graph}> ; DROP SILENT GRAPH <{inferred_graph_for(graph)}>"
            )
            self.version += 1
            if self.listeners:
                self._committed(ModelChange(graph, "delete", [], sorted(before), author))

    def apply_update(
        self, sparql: str, *, allow_managed: bool = False, author: str | None = None
    ) -> UpdateResult:
        try:
            return self._apply_update(sparql, allow_managed=allow_managed, author=author)
        except AppError as exc:
            self._rejected(None, "update", exc, author)
            raise

    def _apply_update(
        self, sparql: str, *, allow_managed: bool, author: str | None
    ) -> UpdateResult:
        """Run a SPARQL Update, then validate what it changed; undo it if that fails.

        The update itself is atomic in the store. The graphs it touched are found by
        comparing their content before and after; a change that breaks the shapes, or
        touches a managed graph without ``allow_managed``, is reverted by restoring the
        touched graphs atomically.
        """
        if not allow_managed and _MANAGED_IRI.search(sparql):
            raise ForbiddenError(
                "The update names a graph TwinGraph manages (urn:twingraph:ontology:, "
                ":inferred:, :staging: or :system); that needs the admin scope.",
                code="managed_graph",
            )
        with self._write_lock:
            before = self._snapshot()
            ontology_sizes = self._ontology_sizes()
            try:
                self.store.update(sparql)
            except SyntaxError as exc:
                raise InvalidInputError(
                    f"SPARQL Update syntax error: {exc.msg or exc}", code="sparql_syntax_error"
                ) from exc
            after = self._snapshot()
            changed = {
                g: (
                    after.get(g, set()) - before.get(g, set()),
                    before.get(g, set()) - after.get(g, set()),
                )
                for g in set(before) | set(after)
                if before.get(g) != after.get(g)
            }
            if DEFAULT_GRAPH in changed:
                self._restore(before, changed)
                raise InvalidInputError(
                    "The update writes to the default graph; models live in named graphs, so "
                    "wrap the triples in GRAPH <iri> { ... }. Nothing was changed.",
                    code="default_graph_read_only",
                )
            managed = [g for g in changed if is_managed_graph(g)]
            if not allow_managed and self._ontology_sizes() != ontology_sizes:
                self.on_ontology_tampered()
                managed.append("urn:twingraph:ontology:*")
            if managed and not allow_managed:
                self._restore(before, changed)
                raise ForbiddenError(
                    "The update changes graphs TwinGraph manages ("
                    + ", ".join(f"<{g}>" for g in managed)
                    + "); that needs the admin scope. Nothing was changed.",
                    code="managed_graph",
                )
            report: ValidationReport | None = None
            if self.validator is not None:
                results: list[ValidationResult] = []
                for g, (added, removed) in changed.items():
                    if g == DEFAULT_GRAPH or is_managed_graph(g):
                        continue
                    rep = self.validator.validate_delta(
                        added=_triples(added), removed=_triples(removed), fetch=self._fetcher(g)
                    )
                    results.extend(rep.results)
                report = ValidationReport(results=tuple(results), engine="delta")
                if not report.conforms:
                    self._restore(before, changed)
                    raise ValidationFailedError(
                        f"The update would leave {len(report.violations)} SHACL violation(s); "
                        "it was undone.",
                        report=report.as_dict(),
                    )
            for g in changed:
                if g != DEFAULT_GRAPH and not is_managed_graph(g):
                    self._refresh_inferred(g)
            self.version += 1
            for g, (added, removed) in changed.items():
                if g != DEFAULT_GRAPH and not is_managed_graph(g):
                    self._committed(
                        ModelChange(g, "update", sorted(added), sorted(removed), author)
                    )
            return UpdateResult(
                changed={g: (len(a), len(r)) for g, (a, r) in changed.items()}, report=report
            )

    # -- internals ---------------------------------------------------------------------

    def _lines(self, graph: str) -> set[bytes]:
        return set(self.store.dump(graph, RdfFormat.N_TRIPLES).splitlines())

    def _committed(self, change: ModelChange) -> None:
        for listener in self.listeners:
            listener.committed(change)

    def _rejected(
        self, graph: str | None, operation: str, error: AppError, author: str | None
    ) -> None:
        for listener in self.listeners:
            listener.rejected(graph=graph, operation=operation, error=error, author=author)

    def _commit(
        self, graph: str, triples: Sequence[Triple], inferred: Sequence[Triple], *, replace: bool
    ) -> None:
        g, inf = NamedNode(graph), NamedNode(inferred_graph_for(graph))
        quads = [Quad(t.subject, t.predicate, t.object, g) for t in triples]
        quads += [Quad(t.subject, t.predicate, t.object, inf) for t in inferred]
        exists = graph in self.store.graph_names()
        if len(quads) >= BULK_MIN_QUADS and not exists:
            self._bulk_commit(graph, quads)
        else:
            self.store.replace([graph, inf.value] if replace else [], quads)

    def _bulk_commit(self, graph: str, quads: Sequence[Quad]) -> None:
        """A large new model: bulk-loaded (several times faster than a transaction).

        The load is not atomic in the store, so it is made so around it: a loading marker
        in the system graph is the undo record (a crash leaves it, and start-up drops what
        it names), and the graphs stay out of every query until the marker is removed.
        """
        graphs = (graph, inferred_graph_for(graph))
        marker = f"<{graph}> <{LOADING}> true"
        self.store.update(f"INSERT DATA {{ GRAPH <{SYSTEM_GRAPH}> {{ {marker} }} }}")
        self._loading.update(graphs)
        try:
            self.store.bulk_add(quads)
        except BaseException:
            self.store.replace(list(graphs), [])
            raise
        finally:
            self.store.update(f"DELETE DATA {{ GRAPH <{SYSTEM_GRAPH}> {{ {marker} }} }}")
            self._loading.difference_update(graphs)

    def hidden_graphs(self) -> frozenset[str]:
        """Graphs being bulk-loaded: queries must not see them yet."""
        return frozenset(self._loading)

    def drop_unfinished_loads(self) -> list[str]:
        """Drop models whose bulk load a crash interrupted (start-up)."""
        res = self.store.query(
            f"SELECT ?g WHERE {{ GRAPH <{SYSTEM_GRAPH}> {{ ?g <{LOADING}> ?x }} }}",
            union_default=False,
        )
        unfinished = [row["g"].value for row in res]  # type: ignore[union-attr]
        for g in unfinished:
            self.store.replace([g, inferred_graph_for(g)], [])
            self.store.update(
                f"DELETE WHERE {{ GRAPH <{SYSTEM_GRAPH}> {{ <{g}> <{LOADING}> ?x }} }}"
            )
        return unfinished

    def _fetcher(
        self, graph: str, extra: Sequence[Triple] = ()
    ) -> Callable[[Sequence[str]], Sequence[Triple]]:
        """Triples of ``graph`` (plus ``extra``, not yet stored) around the given nodes.

        Returns every triple whose subject or object is one of the nodes, and the triples
        of blank nodes those reach, so references such as ``ref:hasExternalReference [...]``
        come whole.
        """

        def fetch(iris: Sequence[str]) -> Sequence[Triple]:
            if not iris:
                return []
            wanted = set(iris)
            out = list(self.store.triples_about(graph, sorted(wanted)))
            if extra:
                blanks = {t.object for t in extra if _iri(t.subject) in wanted}
                out.extend(
                    t
                    for t in extra
                    if _iri(t.subject) in wanted or _iri(t.object) in wanted or t.subject in blanks
                )
            return out

        return fetch

    def _snapshot(self) -> dict[str, set[bytes]]:
        graphs = [DEFAULT_GRAPH, *self.store.graph_names()]
        out: dict[str, set[bytes]] = {}
        for g in graphs:
            if g.startswith("urn:twingraph:ontology:"):
                continue  # large and only changeable with admin scope: tracked by hash
            lines = self.store.dump(g, RdfFormat.N_TRIPLES).splitlines()
            if lines:
                out[g] = set(lines)
        return out

    def _restore(
        self,
        before: Mapping[str, set[bytes]],
        changed: Mapping[str, tuple[set[bytes], set[bytes]]],
    ) -> None:
        """Undo an update: the exact inverse diff where SPARQL can name every triple, else
        (blank nodes in the diff) the touched graphs restored whole, atomically either way."""
        if not any(b"_:" in line for a, r in changed.values() for line in (*a, *r)):
            ops = []
            for g, (added, removed) in changed.items():
                for verb, lines in (("DELETE", added), ("INSERT", removed)):
                    if lines:
                        body = b"\n".join(lines).decode()
                        inner = f"GRAPH <{g}> {{ {body} }}" if g else body
                        ops.append(f"{verb} DATA {{ {inner} }}")
            self.store.update(" ;\n".join(ops))
            return
        quads: list[Quad] = []
        for g in changed:
            target = DefaultGraph() if g == DEFAULT_GRAPH else NamedNode(g)
            quads += [
                Quad(t.subject, t.predicate, t.object, target)
                for t in _triples(before.get(g, set()))
            ]
        self.store.replace(list(changed), quads)

    def _ontology_sizes(self) -> dict[str, int]:
        return {
            g: n
            for g, n in self.store.graph_sizes().items()
            if g.startswith("urn:twingraph:ontology:")
        }

    def refresh_inferred_types(self) -> list[str]:
        """Recompute every model's inferred types from the current class hierarchy: stored
        ones follow the ontologies of the ingest (another Brick version changes them)."""
        with self._write_lock:
            models = [g.iri for g in self.graphs() if g.kind == "model"]
            for graph in models:
                self._refresh_inferred(graph)
        return models

    def _refresh_inferred(self, graph: str) -> None:
        triples = _triples(set(self.store.dump(graph, RdfFormat.N_TRIPLES).splitlines()))
        inf = NamedNode(inferred_graph_for(graph))
        quads = [
            Quad(t.subject, t.predicate, t.object, inf)
            for t in inferred_types(triples, self.hierarchy)
        ]
        self.store.replace([inf.value], quads)


def _nt(t: Triple) -> bytes:
    """The N-Triples line Oxigraph's dump writes for ``t`` (same escaping)."""
    return f"{t.subject} {t.predicate} {t.object} .".encode()


def _same_graph(before: set[bytes], new: set[bytes], mode: Mode) -> bool:
    """Would writing ``new`` leave the graph as it is? Blank nodes compare by structure."""
    if mode == "merge":
        blank_free = not any(b"_:" in line for line in new)
        return blank_free and new <= before
    if len(before) != len(new):
        return False
    if before == new:
        return True
    if not any(b"_:" in line for line in new):
        return False
    return _canonical(before) == _canonical(new)


def _canonical(lines: set[bytes]) -> set[Quad]:
    from pyoxigraph import CanonicalizationAlgorithm, Dataset

    dataset = Dataset(parse(b"\n".join(lines), format=RdfFormat.N_QUADS))
    dataset.canonicalize(CanonicalizationAlgorithm.UNSTABLE)
    return set(dataset)


def _iri(term: object) -> str | None:
    return term.value if isinstance(term, NamedNode) else None


def _check_model_graph(graph: str) -> None:
    if not graph or ":" not in graph:
        raise InvalidInputError(f"Graph name {graph!r} is not an absolute IRI", code="bad_graph")
    try:
        NamedNode(graph)
    except ValueError as exc:
        raise InvalidInputError(
            f"Graph name {graph!r} is not a valid IRI: {exc}", code="bad_graph"
        ) from exc
    if is_managed_graph(graph):
        raise ForbiddenError(
            f"<{graph}> is managed by TwinGraph (ontologies, inferred types, staging) and "
            "cannot be written as a model",
            code="managed_graph",
        )


def _triples(lines: set[bytes]) -> list[Triple]:
    if not lines:
        return []
    return [q.triple for q in parse(b"\n".join(lines), format=RdfFormat.N_TRIPLES)]
