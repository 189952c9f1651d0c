"""Old Brick namespaces: detecting them, and migrating models to current Brick.

Published models still use Brick 1.0.x (``.../1.0.2/Brick#`` with relationships in
``BrickFrame#``), 1.1 (``.../1.1/Brick#``) or mistyped namespaces for ``ref:`` and units.
They load as they are (the shapes simply do not recognise their classes, which we report);
``migrate=True`` rewrites them to the current namespaces and replaces classes that current
Brick marks ``brick:isReplacedBy``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from pyoxigraph import BlankNode, Literal, NamedNode, Triple

from app.domain.iris import BRICK, RDF_TYPE, REF, TAG, UNIT

_LEGACY_BRICK = re.compile(
    r"^(?:https?://brickschema\.org/schema/(?:\d+\.\d+(?:\.\d+)?/)?|http://buildsys\.org/ontologies/)"
    r"(Brick|BrickFrame|BrickTag)#"
)
#: Namespaces seen in published models that were never right, with what was meant.
_MISTAKEN = {
    "https://brickschema.org/schema/ref#": REF,
    "http://brickschema.org/schema/Brick/ref#": REF,
    "http://brickschema.org/schema/Brick/units#": UNIT,
    "https://brickschema.org/schema/Brick/units#": UNIT,
    "http://brickschema.org/schema/Brick#": BRICK,
}
_TARGET = {"Brick": BRICK, "BrickFrame": BRICK, "BrickTag": TAG}


@dataclass(slots=True)
class MigrationReport:
    namespaces: Counter[str] = field(default_factory=Counter)
    rewritten_iris: int = 0
    replaced_classes: dict[str, str] = field(default_factory=dict)
    unknown_classes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "legacy_namespaces": dict(self.namespaces),
            "rewritten_iris": self.rewritten_iris,
            "replaced_classes": self.replaced_classes,
            "unknown_classes": self.unknown_classes,
        }


def legacy_namespace(iri: str) -> tuple[str, str] | None:
    """(old namespace, new namespace) when ``iri`` uses an outdated Brick namespace."""
    if iri.startswith(BRICK) or iri.startswith(TAG) or iri.startswith(REF):
        return None
    match = _LEGACY_BRICK.match(iri)
    if match:
        return match.group(0), _TARGET[match.group(1)]
    for old, new in _MISTAKEN.items():
        if iri.startswith(old):
            return old, new
    return None


def detect_legacy(triples: Iterable[Triple]) -> Counter[str]:
    """How often each outdated namespace occurs (predicates and objects are enough)."""
    found: Counter[str] = Counter()
    for t in triples:
        for term in (t.predicate, t.object):
            if isinstance(term, NamedNode):
                hit = legacy_namespace(term.value)
                if hit:
                    found[hit[0]] += 1
    return found


def migrate(
    triples: Iterable[Triple],
    *,
    replaced_by: Mapping[str, str],
    is_known_class: Callable[[str], bool],
) -> tuple[list[Triple], MigrationReport]:
    """Rewrite outdated namespaces, then replace deprecated classes by their successors."""
    report = MigrationReport()
    cache: dict[str, NamedNode] = {}

    def fix(term: NamedNode | BlankNode | Literal | Triple) -> NamedNode | BlankNode | Literal:
        if not isinstance(term, NamedNode):
            assert not isinstance(term, Triple), "RDF-star terms are not supported in models"
            return term
        if term.value in cache:
            return cache[term.value]
        iri = term.value
        hit = legacy_namespace(iri)
        if hit:
            old, new = hit
            report.namespaces[old] += 1
            iri = new + iri[len(old) :]
        new_term = NamedNode(iri)
        cache[term.value] = new_term
        return new_term

    out: list[Triple] = []
    for t in triples:
        s, p, o = fix(t.subject), fix(t.predicate), fix(t.object)
        if s != t.subject or p != t.predicate or o != t.object:
            report.rewritten_iris += 1
        if p.value == RDF_TYPE and isinstance(o, NamedNode):
            successor = replaced_by.get(o.value)
            if successor:
                report.replaced_classes[o.value] = successor
                o = NamedNode(successor)
            elif o.value.startswith(BRICK) and not is_known_class(o.value):
                if o.value not in report.unknown_classes:
                    report.unknown_classes.append(o.value)
        out.append(Triple(s, p, o))  # type: ignore[arg-type]
    return out, report
