"""``/events``: the event log as Server-Sent Events (live, resumable) or as JSON pages.

Filters (repeatable, all must hold): ``type`` (``command.*`` matches a family), ``twin``,
``class`` (CURIEs like ``brick:VAV`` or IRIs; an event carries its twin's classes with
their superclasses), ``site``, ``graph``, ``ok``, and ``selector``: a SPARQL SELECT whose
first variable binds the twins ("any VAV on level 3"); it is re-evaluated whenever a
model changes. SSE resumes after ``Last-Event-ID`` (or ``?after=``) from the stored log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import PlatformDep, ReaderDep
from app.errors import InvalidInputError, UnavailableError
from app.events.bus import EventBus
from app.events.model import Event, EventFilter, unknown_types
from app.events.selectors import expand_curie, resolve_selector
from app.platform import Platform

router = APIRouter(tags=["events"])
KEEPALIVE_S = 15.0


def _bus(platform: Platform) -> EventBus:
    if platform.events is None:
        raise UnavailableError("Events need the database (telemetry is off)", code="no_events")
    return platform.events


async def _filter(
    platform: Platform,
    types: list[str],
    twins: list[str],
    classes: list[str],
    sites: list[str],
    graphs: list[str],
    ok: bool | None,
    selector: str | None,
) -> EventFilter:
    bad = unknown_types(types)
    if bad:
        raise InvalidInputError(
            f"Unknown event type(s) {', '.join(bad)}", code="unknown_event_type"
        )
    selected: set[str] | None = {expand_curie(t) for t in twins} if twins else None
    if selector:
        chosen = await run_in_threadpool(resolve_selector, platform.sparql, selector)
        selected = set(chosen) if selected is None else selected & chosen
    return EventFilter.of(
        types=types,
        twins=selected,
        classes=[expand_curie(c) for c in classes],
        sites=sites,
        graphs=graphs,
        ok=ok,
    )


def _sse(event: Event) -> bytes:
    body = json.dumps(event.as_dict(), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {body}\n\n".encode()


@router.get("/events", summary="Events: SSE stream (Accept: text/event-stream) or a JSON page")
async def events(
    request: Request,
    platform: PlatformDep,
    _caller: ReaderDep,
    type: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI reads, never mutates
    twin: Annotated[list[str], Query()] = [],  # noqa: B006
    class_: Annotated[list[str], Query(alias="class")] = [],  # noqa: B006
    site: Annotated[list[str], Query()] = [],  # noqa: B006
    graph: Annotated[list[str], Query()] = [],  # noqa: B006
    ok: bool | None = None,
    selector: str | None = None,
    after: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> Response:
    bus = _bus(platform)
    flt = await _filter(platform, type, twin, class_, site, graph, ok, selector)
    if "text/event-stream" not in request.headers.get("accept", ""):
        page = await run_in_threadpool(
            lambda: bus.fetch(
                after_id=after or 0, filter=flt, since=since, until=until, limit=limit
            )
        )
        return JSONResponse(
            {
                "events": [e.as_dict() for e in page],
                "next_after": page[-1].id if page else after or 0,
            }
        )
    last = request.headers.get("last-event-id") or (str(after) if after is not None else None)
    try:
        after_id = int(last) if last is not None else None
    except ValueError as exc:
        raise InvalidInputError("Last-Event-ID must be an event id", code="bad_event_id") from exc
    bus.start()

    async def stream() -> AsyncIterator[bytes]:
        current = flt
        # With a selector the stream also watches model changes (to re-evaluate it), so
        # the subscription takes everything and the filter is applied here, in order.
        subscription = bus.subscribe(EventFilter() if selector else flt, after_id=after_id)
        try:
            yield b": connected\n\n"
            async for event in _ticking(request, subscription):
                if event is None:
                    yield b": keep-alive\n\n"
                    continue
                if selector is not None and event.type.startswith("model."):
                    # The model changed: re-evaluate which twins the selector picks.
                    query: str = selector
                    chosen = await run_in_threadpool(resolve_selector, platform.sparql, query)
                    current = _with_twins(current, chosen, twin)
                if current.matches(event):
                    yield _sse(event)
        finally:
            subscription.close()

    return _sse_response(stream())


def _with_twins(flt: EventFilter, chosen: frozenset[str], explicit: list[str]) -> EventFilter:
    from dataclasses import replace

    twins = chosen & {expand_curie(t) for t in explicit} if explicit else chosen
    return replace(flt, twins=frozenset(twins))


@router.get("/events/readings", summary="Live readings as Server-Sent Events")
async def reading_events(
    request: Request,
    platform: PlatformDep,
    _caller: ReaderDep,
    point: Annotated[list[str], Query()] = [],  # noqa: B006
) -> StreamingResponse:
    """Readings as they commit (any process), for the points named (UUID, id, IRI or
    label) or all points; one SSE message per batch: ``[{point, time, value}, ...]``."""
    from app.api.telemetry import _point

    bus = _bus(platform)
    chosen = frozenset(_point(platform, key) for key in point) if point else None
    bus.start()

    async def stream() -> AsyncIterator[bytes]:
        subscription = bus.subscribe_readings(chosen)
        try:
            yield b": connected\n\n"
            async for batch in _ticking(request, subscription):
                if batch is None:
                    yield b": keep-alive\n\n"
                    continue
                body = json.dumps(
                    [
                        {"point": str(r.point), "time": r.time.isoformat(), "value": r.value}
                        for r in batch
                    ],
                    separators=(",", ":"),
                )
                yield f"event: readings\ndata: {body}\n\n".encode()
        finally:
            subscription.close()

    return _sse_response(stream())


T = TypeVar("T")


async def _ticking(request: Request, source: AsyncIterator[T]) -> AsyncIterator[T | None]:
    """The items of ``source``, and ``None`` after every quiet keep-alive interval; ends
    when the client has gone."""
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_S)
            if done:
                item, pending = pending.result(), None
                yield item
            elif await request.is_disconnected():
                return
            else:
                yield None
    finally:
        if pending is not None:
            pending.cancel()


def _sse_response(stream: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
