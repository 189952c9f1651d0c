"""Events: what happened to a model or a twin, and filters that select them.

An event is durable (a row in PostgreSQL's ``events`` table with an increasing id) so a
consumer that reconnects resumes after the last id it saw. Types are dotted names:
``model.replaced``, ``model.merged``, ``model.updated``, ``model.deleted``,
``model.rejected``, ``validation.failed``, ``desired.set``, ``reported``, ``synced``, ``command.queued``,
``command.delivered``, ``command.acknowledged``, ``command.succeeded``,
``command.failed``, ``command.expired``, ``device.online``, ``device.offline``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

#: Every event type the platform emits (filters accept these and ``prefix.*``).
EVENT_TYPES: tuple[str, ...] = (
    "model.replaced",
    "model.merged",
    "model.updated",
    "model.deleted",
    "model.rejected",
    "validation.failed",
    "desired.set",
    "reported",
    "synced",
    "command.queued",
    "command.delivered",
    "command.acknowledged",
    "command.succeeded",
    "command.failed",
    "command.expired",
    "device.online",
    "device.offline",
    "twin.registered",
    "twin.updated",
    "twin.deleted",
    "desired.delivered",
    "desired.acknowledged",
    "device.rejected",
)


@dataclass(frozen=True, slots=True)
class Event:
    type: str
    data: Mapping[str, Any] = field(default_factory=dict)
    #: The twin (entity IRI) the event is about, if any.
    twin: str | None = None
    #: The model graph the event concerns, if any.
    graph: str | None = None
    site: str | None = None
    #: Class IRIs of the twin, inferred superclasses included (for class filters).
    classes: tuple[str, ...] = ()
    ok: bool = True
    author: str | None = None
    #: Assigned when published.
    id: int | None = None
    time: datetime | None = None

    def stored(self, id: int, time: datetime) -> Event:
        return replace(self, id=id, time=time)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "time": self.time.isoformat() if self.time else None,
            "type": self.type,
            "ok": self.ok,
            "twin": self.twin,
            "graph": self.graph,
            "site": self.site,
            "classes": list(self.classes),
            "author": self.author,
            "data": dict(self.data),
        }


@dataclass(frozen=True, slots=True)
class EventFilter:
    """All given criteria must hold; each set criterion matches any of its members.

    ``types`` entries may end in ``.*`` (``command.*``). ``twins`` is usually the answer
    of a graph-pattern selector ("any VAV on level 3"), resolved by the caller. ``matches``
    filters events in memory; ``app.events.bus.filter_clauses`` is the same filter in SQL
    for reads of the log: the two change together.
    """

    types: frozenset[str] = frozenset()
    twins: frozenset[str] | None = None
    classes: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    graphs: frozenset[str] = frozenset()
    ok: bool | None = None

    @classmethod
    def of(
        cls,
        *,
        types: Iterable[str] = (),
        twins: Iterable[str] | None = None,
        classes: Iterable[str] = (),
        sites: Iterable[str] = (),
        graphs: Iterable[str] = (),
        ok: bool | None = None,
    ) -> EventFilter:
        return cls(
            types=frozenset(types),
            twins=None if twins is None else frozenset(twins),
            classes=frozenset(classes),
            sites=frozenset(sites),
            graphs=frozenset(graphs),
            ok=ok,
        )

    def matches(self, event: Event) -> bool:
        if self.types and not _type_matches(self.types, event.type):
            return False
        if self.twins is not None and event.twin not in self.twins:
            return False
        if self.classes and self.classes.isdisjoint(event.classes):
            return False
        if self.sites and event.site not in self.sites:
            return False
        if self.graphs and event.graph not in self.graphs:
            return False
        return self.ok is None or event.ok == self.ok


def _type_matches(patterns: frozenset[str], type_: str) -> bool:
    if type_ in patterns:
        return True
    return any(p.endswith(".*") and type_.startswith(p[:-1]) for p in patterns)


def unknown_types(patterns: Iterable[str]) -> list[str]:
    """Filter entries that can never match a platform event (for a clear 400)."""
    out = []
    for p in patterns:
        if p.endswith(".*"):
            if not any(t.startswith(p[:-1]) for t in EVENT_TYPES):
                out.append(p)
        elif p not in EVENT_TYPES:
            out.append(p)
    return out
