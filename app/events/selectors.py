"""Graph-pattern selectors: "any VAV on level 3" as a SPARQL SELECT whose first variable
binds the twins (entity IRIs) it selects. Shared by event filters (SSE and GraphQL
subscriptions follow a selector through model changes with ``follow_selector``) and bulk
operations."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import replace

from app.domain.iris import STANDARD_PREFIXES
from app.errors import InvalidInputError
from app.events.bus import EventBus
from app.events.model import Event, EventFilter
from app.graph.sparql import SparqlService

MAX_SELECTED = 100_000


def expand_curie(value: str) -> str:
    """``brick:VAV`` -> the full IRI, for the standard prefixes; IRIs pass through."""
    value = value.strip().removeprefix("<").removesuffix(">")
    prefix, sep, local = value.partition(":")
    if sep and prefix in STANDARD_PREFIXES and not local.startswith("//"):
        return STANDARD_PREFIXES[prefix] + local
    return value


def resolve_selector(sparql: SparqlService, query: str) -> frozenset[str]:
    """The IRIs bound to the first variable of a SELECT query (read-only, usual limits)."""
    if not query.strip():
        raise InvalidInputError("The selector is empty", code="bad_selector")
    answer = sparql.run(query, accept="application/sparql-results+json")
    try:
        doc = json.loads(answer.body)
        variables = doc["head"]["vars"]
        bindings = doc["results"]["bindings"]
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(
            "The selector must be a SELECT query whose first variable binds the twins",
            code="bad_selector",
        ) from exc
    if not variables:
        raise InvalidInputError("The selector selects no variable", code="bad_selector")
    first = variables[0]
    out = {b[first]["value"] for b in bindings if first in b and b[first].get("type") == "uri"}
    if len(out) > MAX_SELECTED:
        raise InvalidInputError(
            f"The selector matches {len(out)} twins; the limit is {MAX_SELECTED}",
            code="selector_too_broad",
        )
    return frozenset(out)


def narrowed(given: EventFilter, chosen: frozenset[str]) -> EventFilter:
    """``given`` limited to the twins a selector chose (and to its own twins, if any)."""
    explicit = given.twins
    return replace(given, twins=chosen if explicit is None else chosen & explicit)


async def follow_selector(
    bus: EventBus,
    given: EventFilter,
    choose: Callable[[], Awaitable[frozenset[str]]],
    *,
    after_id: int | None = None,
    initial: frozenset[str] | None = None,
) -> AsyncGenerator[Event, None]:
    """Events matching ``given`` about the twins ``choose`` selects now, in log order.

    ``choose`` (a selector's evaluation) runs at the start and again on every committed
    model change, before the events that follow that change are matched: the stream
    subscribes to every event and filters here, so no event is matched against a selection
    older than the model it came after. Twins ``given`` names explicitly narrow the
    selection further. ``initial``: the selection already made (not chosen again)."""

    current = narrowed(given, initial if initial is not None else await choose())
    subscription = bus.subscribe(EventFilter(), after_id=after_id)
    try:
        async for event in subscription:
            if event.ok and event.type.startswith("model."):
                current = narrowed(given, await choose())
            if current.matches(event):
                yield event
    finally:
        subscription.close()
