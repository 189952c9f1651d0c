"""SHACL validation of Brick/REC models: the model's focus nodes against Brick's shapes.

Why not ``brickschema.Graph(load_brick=True).validate()``: it puts Brick in the data graph,
so Brick's own classes become focus nodes and fail on the QUDT quantity kinds it does not
ship (~47 violations on every official example), and it re-parses 60k ontology triples on
each call. Here the shapes graph (Brick, its embedded shapes, plus the class hierarchy of
the vocabularies) is prepared once with shifty's ``PreparedValidator``; each call sends
only the model, in ``union`` graph mode, where focus nodes come from the data graph alone
while class membership and SHACL-SPARQL see data and shapes together. The rdf:type facts of
the QUDT units and quantity kinds a model points at are added to its data, so ``sh:class
qudt:Unit`` resolves without handing the 90k-triple QUDT to the engine.

Brick's SHACL-AF rules (inverse edges, ``brick:value`` -> ``rec:value``, sub-properties,
tags) run by default inside the engine, on the data only, and are discarded afterwards: the
official examples rely on them (``controller`` states ``hasPoint`` and is checked for
``isPointOf``), and they cost ~1.5x, not the 10x of re-validating the ontology. Pass
``infer=False`` to check the model exactly as written.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Collection, Iterable, Sequence
from pathlib import Path

import pyoxigraph as ox
import shifty

from app.domain.iris import RDF_TYPE, STANDARD_PREFIXES
from app.domain.validation import Severity, ValidationReport, ValidationResult
from app.graph.rdf_io import escape_invalid_iris
from app.graph.shapes import OntologyIndex, ShapesLoadError

__all__ = ["ShaclValidator", "ShapesLoadError", "default_ontology_files"]

_TYPE = ox.NamedNode(RDF_TYPE)
_SEVERITIES = {
    "violation": Severity.VIOLATION,
    "warning": Severity.WARNING,
    "info": Severity.INFO,
}
_VOCABULARY_ROOT = (
    Path(__file__).resolve().parents[2] / "ontologies" / "node_modules" / "@vocabulary"
)

Fetch = Callable[[Sequence[str]], Sequence[ox.Triple]]


def default_ontology_files(brick_version: str = "1.5") -> list[Path]:
    """Brick (shipped by brickschema, shapes embedded) and QUDT 3.1.0 (npm ``@vocabulary/*``)."""
    import brickschema

    brick = Path(brickschema.__file__).parent / "ontologies" / brick_version / "Brick.ttl"
    qudt = [
        _VOCABULARY_ROOT / "qudt" / "qudt.nq",
        _VOCABULARY_ROOT / "unit" / "unit.nq",
        _VOCABULARY_ROOT / "quantitykind" / "quantitykind.nq",
    ]
    return [brick, *(p for p in qudt if p.exists())]


class ShaclValidator:
    """Brick-shapes validation prepared once, used for whole models and for deltas.

    Thread-safety: the prepared shapes are immutable; calls do not share mutable state.
    """

    def __init__(
        self, index: OntologyIndex, prepared: shifty.PreparedValidator, *, infer: bool = True
    ) -> None:
        self._index = index
        self._prepared = prepared
        self._infer = infer
        #: The ontology and shapes files the shapes were prepared from (set by from_files):
        #: whoever reuses a prepared validator can check it fits their ontology set.
        self.files: tuple[Path, ...] = ()
        rules = "with Brick rules" if infer else "no rules"
        self.engine_name = f"shifty {shifty.__version__} (prepared shapes, union mode, {rules})"

    @classmethod
    def from_files(
        cls,
        ontology_files: Sequence[Path],
        *,
        extra_shapes: Sequence[Path] = (),
        infer: bool = True,
    ) -> ShaclValidator:
        """Prepare once at start-up (parse ontology, index shapes, build class hierarchy).

        Raises :class:`ShapesLoadError` if a file is missing, unparseable, holds no shapes, or
        the engine rejects the shapes.
        """
        index = OntologyIndex.load(
            [Path(p) for p in ontology_files], [Path(p) for p in extra_shapes]
        )
        try:
            prepared = shifty.PreparedValidator(index.shapes_turtle())
        except (ValueError, RuntimeError, OSError, SyntaxError) as exc:
            raise ShapesLoadError(f"the SHACL engine rejected the shapes: {exc}") from exc
        validator = cls(index, prepared, infer=infer)
        validator.files = tuple(Path(p) for p in [*ontology_files, *extra_shapes])
        return validator

    # -- ontology look-ups -------------------------------------------------------------------

    def superclasses(self, class_iri: str) -> frozenset[str]:
        """Reflexive-transitive closure over rdfs:subClassOf and owl:equivalentClass."""
        return self._index.superclasses(class_iri)

    def known_class(self, class_iri: str) -> bool:
        return class_iri in self._index.classes

    # -- validation --------------------------------------------------------------------------

    def validate(self, triples: Sequence[ox.Triple]) -> ValidationReport:
        """Validate a whole model (its focus nodes only, not the ontology)."""
        started = time.perf_counter()
        subjects = {_term_key(t.subject) for t in triples}
        results = self._run(triples)
        return ValidationReport(
            results=tuple(results),
            focus_nodes_checked=len(subjects),
            engine=self.engine_name,
            seconds=time.perf_counter() - started,
        )

    def validate_delta(
        self,
        *,
        added: Sequence[ox.Triple],
        removed: Sequence[ox.Triple],
        fetch: Fetch,
    ) -> ValidationReport:
        """Re-validate only the nodes a change affects.

        *Touched* nodes are the IRIs in subject or object position of an added or removed
        triple (not classes, not vocabulary individuals such as units), plus blank nodes that
        are subjects of added triples. Their results are reported in full. Their *neighbours*
        (nodes with an edge to or from a touched node in the changed model) are re-checked too,
        because a shape on a neighbour may look at a touched node (``sh:class brick:Point`` on
        ``brick:hasPoint``); for them only results whose value is a touched node are reported,
        since their other values were not loaded with their types.

        Two ``fetch`` calls: touched nodes, then neighbours. The data handed to the engine is
        the 2-hop neighbourhood of the touched nodes, not the model.
        """
        started = time.perf_counter()
        touched = self._touched(added, removed)
        level1 = list(fetch(sorted(touched))) if touched else []
        neighbours = {
            iri
            for iri in _node_iris(level1, touched_only=touched)
            if iri not in touched and self._is_model_node(iri)
        }
        level2 = list(fetch(sorted(neighbours))) if neighbours else []
        added_bnodes = {_term_key(t.subject) for t in added if isinstance(t.subject, ox.BlankNode)}
        data = list(dict.fromkeys([*level1, *level2, *added]))
        removed_set = set(removed)
        data = [t for t in data if t not in removed_set]
        subjects = {_term_key(t.subject) for t in data}

        results: list[ValidationResult] = []
        focus_keys = touched | added_bnodes
        for r in self._run(data) if data else ():
            if r.focus_node in focus_keys or (
                r.focus_node in neighbours and r.value is not None and r.value in touched
            ):
                results.append(r)
        return ValidationReport(
            results=tuple(results),
            focus_nodes_checked=len((focus_keys | neighbours) & subjects),
            engine=self.engine_name + " [delta]",
            seconds=time.perf_counter() - started,
            notes=(
                f"{len(touched)} touched nodes, {len(neighbours)} neighbours, "
                f"{len(data)} triples validated",
            ),
        )

    # -- internals ---------------------------------------------------------------------------

    def _is_model_node(self, iri: str) -> bool:
        """False for ontology terms (classes, units, quantity kinds): never focus nodes here."""
        return iri not in self._index.classes and iri not in self._index.individual_types

    def _touched(self, added: Sequence[ox.Triple], removed: Sequence[ox.Triple]) -> set[str]:
        touched: set[str] = set()
        for t in (*added, *removed):
            if isinstance(t.subject, ox.NamedNode):
                touched.add(t.subject.value)
            if isinstance(t.object, ox.NamedNode) and t.predicate != _TYPE:
                touched.add(t.object.value)
        return {iri for iri in touched if self._is_model_node(iri)}

    def _run(self, triples: Iterable[ox.Triple]) -> list[ValidationResult]:
        model, renamed = escape_invalid_iris(list(triples))
        if renamed:
            return [_unescape(r, renamed) for r in self._run(model)]
        iris = {t.object.value for t in model if isinstance(t.object, ox.NamedNode)}
        iris.update(t.subject.value for t in model if isinstance(t.subject, ox.NamedNode))
        facts = list(self._index.vocabulary_facts(iris))
        data = ox.serialize([*model, *facts], format=ox.RdfFormat.N_TRIPLES) or b""
        try:
            outcome = self._prepared.validate_algebra(
                data, graph_mode="union", infer=self._infer, minimum_severity="info"
            )
        except (ValueError, RuntimeError) as exc:  # the engine failed, not the model
            raise ShapesLoadError(f"the SHACL engine failed: {exc}") from exc
        return [r for v in outcome.violations for r in _results_of(v)]


def _unescape(result: ValidationResult, renamed: dict[str, str]) -> ValidationResult:
    return dataclasses.replace(
        result,
        focus_node=renamed.get(result.focus_node, result.focus_node),
        value=renamed.get(result.value, result.value) if result.value else result.value,
    )


def _results_of(v: shifty.Violation) -> Iterable[ValidationResult]:
    focus = _plain(v.focus_node)
    if not v.reasons:
        yield ValidationResult(
            focus_node=focus,
            severity=_SEVERITIES.get(v.severity.lower(), Severity.VIOLATION),
            message=f"{focus} does not conform to {v.shape_name}",
            shape=v.shape_name,
        )
        return
    for reason in v.reasons:
        yield ValidationResult(
            focus_node=focus,
            severity=_SEVERITIES.get(reason.severity.lower(), Severity.VIOLATION),
            message=reason.author_message or reason.message,
            path=_expand(reason.path) if reason.path else None,
            value=_plain(reason.value) if reason.value else None,
            shape=v.shape_name,
            constraint=str(reason.constraint_kind).rsplit(".", 1)[-1],
        )


def _plain(term: str) -> str:
    """``<iri>`` -> ``iri``; blank nodes and literals keep their N-Triples spelling."""
    if term.startswith("<") and term.endswith(">"):
        return term[1:-1]
    return term


def _expand(path: str) -> str:
    """Expand a compact predicate path (``brick:hasUnit``) to its IRI; complex paths as given."""
    if path.startswith("<") and path.endswith(">") and " " not in path:
        return path[1:-1]
    prefix, sep, local = path.partition(":")
    if sep and prefix in STANDARD_PREFIXES and not any(c in local for c in "/|^*+?() "):
        return STANDARD_PREFIXES[prefix] + local
    return path


def _term_key(term: ox.NamedNode | ox.BlankNode | ox.Literal | ox.Triple) -> str:
    if isinstance(term, ox.NamedNode):
        return term.value
    if isinstance(term, ox.BlankNode):
        return "_:" + term.value
    return str(term)


def _node_iris(triples: Iterable[ox.Triple], *, touched_only: Collection[str]) -> set[str]:
    """IRIs at the other end of an edge from a touched node (rdf:type objects excluded)."""
    out: set[str] = set()
    for t in triples:
        s, o = t.subject, t.object
        if t.predicate == _TYPE:
            continue
        if isinstance(s, ox.NamedNode) and isinstance(o, ox.NamedNode):
            if s.value in touched_only:
                out.add(o.value)
            if o.value in touched_only:
                out.add(s.value)
    return out
