"""The ontology side of validation: the shapes graph, the class hierarchy, vocabulary facts.

Ontology files fall into two kinds, decided by content rather than by name:

- *shapes-bearing* files (Brick embeds its SHACL shapes; any file declaring an
  ``sh:NodeShape``/``sh:PropertyShape``) go whole into the shapes graph the engine prepares
  once;
- *vocabulary* files (QUDT units, quantity kinds and schema: ~90k triples) contribute only
  their class hierarchy to the shapes graph, and an index ``individual -> rdf:type`` from
  which the few facts a model needs (``unit:DEG_C a qudt:Unit``) are added to each
  validation. Feeding the whole vocabulary to the engine on every call would cost more than
  validating the model.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyoxigraph as ox

from app.domain.classes import superclass_closure
from app.domain.iris import OWL, RDF_TYPE, RDFS, RDFS_SUBCLASS_OF, SH, STANDARD_PREFIXES
from app.errors import AppError

_TYPE = ox.NamedNode(RDF_TYPE)
_SUBCLASS = ox.NamedNode(RDFS_SUBCLASS_OF)
_EQUIVALENT = ox.NamedNode(OWL + "equivalentClass")
_SHAPE_CLASSES = frozenset({SH + "NodeShape", SH + "PropertyShape"})
_CLASS_TYPES = frozenset({OWL + "Class", RDFS + "Class"})
#: Types that mark ontology machinery rather than an individual a model would point at.
_SCHEMA_TYPES = _CLASS_TYPES | frozenset(
    {
        OWL + "Restriction",
        OWL + "Ontology",
        OWL + "ObjectProperty",
        OWL + "DatatypeProperty",
        OWL + "AnnotationProperty",
        OWL + "FunctionalProperty",
        RDFS + "Datatype",
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#Property",
    }
)


class ShapesLoadError(AppError):
    """An ontology or shapes file cannot be read or prepared: a deployment error, not user input."""

    status = 500
    code = "shapes_invalid"
    title = "Shapes or ontology file cannot be loaded"


def _format_for(path: Path) -> ox.RdfFormat:
    suffix = path.suffix.lstrip(".").lower()
    fmt = ox.RdfFormat.from_extension(suffix) if suffix else None
    if fmt is None:
        raise ShapesLoadError(f"{path}: unknown RDF file extension {path.suffix!r}")
    return fmt


def read_triples(path: Path) -> list[ox.Triple]:
    """All triples of one RDF file; quads lose their graph name (ontologies are merged)."""
    fmt = _format_for(path)
    try:
        with path.open("rb") as fh:
            return [q.triple for q in ox.parse(fh, format=fmt)]
    except OSError as exc:
        raise ShapesLoadError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except SyntaxError as exc:
        raise ShapesLoadError(f"{path}: not valid {fmt.name}: {exc}") from exc


@dataclass
class OntologyIndex:
    """What validation needs from the ontologies, computed once at start-up."""

    shapes_triples: list[ox.Triple] = field(default_factory=list)
    #: direct super-classes, owl:equivalentClass counted both ways.
    direct_supers: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    classes: set[str] = field(default_factory=set)
    #: vocabulary individual IRI -> its rdf:type triples (unit:DEG_C a qudt:Unit, ...).
    individual_types: dict[str, list[ox.Triple]] = field(default_factory=dict)
    _closure: dict[str, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def load(cls, files: Sequence[Path], extra_shapes: Sequence[Path] = ()) -> OntologyIndex:
        index = cls()
        for path in [*files, *extra_shapes]:
            triples = read_triples(path)
            force = path in extra_shapes
            if force or _declares_shapes(triples):
                index.shapes_triples.extend(triples)
                index._learn_hierarchy(triples)
            else:
                index._learn_vocabulary(triples)
        if not _declares_shapes(index.shapes_triples):
            raise ShapesLoadError(
                "no SHACL shapes found in " + ", ".join(str(p) for p in [*files, *extra_shapes])
            )
        return index

    def _learn_hierarchy(self, triples: Iterable[ox.Triple]) -> None:
        for t in triples:
            s, p, o = t.subject, t.predicate, t.object
            if not isinstance(s, ox.NamedNode):
                continue
            if p == _TYPE and isinstance(o, ox.NamedNode) and o.value in _CLASS_TYPES:
                self.classes.add(s.value)
            elif isinstance(o, ox.NamedNode) and p in (_SUBCLASS, _EQUIVALENT):
                self.classes.update((s.value, o.value))
                self.direct_supers[s.value].add(o.value)
                if p == _EQUIVALENT:
                    self.direct_supers[o.value].add(s.value)

    def _learn_vocabulary(self, triples: list[ox.Triple]) -> None:
        """Keep the class hierarchy (as shapes-graph facts) and the individuals' types."""
        self._learn_hierarchy(triples)
        types: dict[str, list[ox.Triple]] = defaultdict(list)
        for t in triples:
            s, p, o = t.subject, t.predicate, t.object
            if not isinstance(s, ox.NamedNode) or not isinstance(o, ox.NamedNode):
                continue
            if p in (_SUBCLASS, _EQUIVALENT):
                self.shapes_triples.append(t)
            elif p == _TYPE:
                if o.value in _CLASS_TYPES:
                    self.shapes_triples.append(t)
                types[s.value].append(t)
        for iri, ts in types.items():
            if not any(_iri(t.object) in _SCHEMA_TYPES for t in ts):
                self.individual_types.setdefault(iri, []).extend(ts)

    def superclasses(self, class_iri: str) -> frozenset[str]:
        cached = self._closure.get(class_iri)
        if cached is None:
            cached = self._closure[class_iri] = superclass_closure(self.direct_supers, class_iri)
        return cached

    def vocabulary_facts(self, iris: Iterable[str]) -> Iterator[ox.Triple]:
        """The rdf:type facts of the vocabulary individuals among ``iris``."""
        for iri in iris:
            yield from self.individual_types.get(iri, ())

    def shapes_turtle(self) -> bytes:
        """The shapes graph as Turtle, with the usual prefixes (SHACL-SPARQL may rely on them)."""
        data = ox.serialize(
            self.shapes_triples, format=ox.RdfFormat.TURTLE, prefixes=STANDARD_PREFIXES
        )
        if data is None:  # pragma: no cover - serialize returns bytes when given no output
            raise ShapesLoadError("cannot serialise the shapes graph")
        return data


def _iri(term: object) -> str | None:
    return term.value if isinstance(term, ox.NamedNode) else None


def _declares_shapes(triples: Iterable[ox.Triple]) -> bool:
    return any(
        t.predicate == _TYPE
        and isinstance(t.object, ox.NamedNode)
        and t.object.value in _SHAPE_CLASSES
        for t in triples
    )
