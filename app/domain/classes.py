"""Class hierarchies: the one closure walk both the store's hierarchy and validation use."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def superclass_closure(parents: Mapping[str, Iterable[str]], cls: str) -> frozenset[str]:
    """Every class ``cls`` is a subclass of (itself included), following ``parents``
    (direct superclasses; cycles such as equivalent classes are fine)."""
    seen = {cls}
    stack = [cls]
    while stack:
        for parent in parents.get(stack.pop(), ()):
            if parent not in seen:
                seen.add(parent)
                stack.append(parent)
    return frozenset(seen)
