"""Materialised class membership, kept apart from what users asserted.

For every ``?x rdf:type C`` in a model, the inferred graph holds ``?x rdf:type S`` for each
superclass ``S`` of ``C`` that the model does not assert itself. With it, analysts'
``?x rdf:type/rdfs:subClassOf* C`` becomes an index lookup (see :mod:`app.graph.rewrite`).
"""

from __future__ import annotations

from collections.abc import Iterable

from pyoxigraph import NamedNode, Triple

from app.domain.iris import RDF_TYPE, RDFS_SUBCLASS_OF
from app.graph.ontology import ClassHierarchy

_TYPE = NamedNode(RDF_TYPE)


def inferred_types(triples: Iterable[Triple], hierarchy: ClassHierarchy) -> list[Triple]:
    asserted: dict[object, set[str]] = {}
    local_subclass: list[tuple[str, str]] = []
    for t in triples:
        p = t.predicate.value
        if p == RDF_TYPE and isinstance(t.object, NamedNode):
            asserted.setdefault(t.subject, set()).add(t.object.value)
        elif (
            p == RDFS_SUBCLASS_OF
            and isinstance(t.subject, NamedNode)
            and isinstance(t.object, NamedNode)
        ):
            local_subclass.append((t.subject.value, t.object.value))
    closure = hierarchy.with_local(local_subclass)
    out: list[Triple] = []
    nodes: dict[str, NamedNode] = {}
    for subject, classes in asserted.items():
        supers: set[str] = set()
        for c in classes:
            supers |= closure.superclasses(c)
        for s in sorted(supers - classes):
            node = nodes.get(s)
            if node is None:
                node = nodes[s] = NamedNode(s)
            out.append(Triple(subject, _TYPE, node))  # type: ignore[arg-type]
    return out
