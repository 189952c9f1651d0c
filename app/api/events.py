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
from collections.abc import AsyncGenerator, AsyncIterator
from datetime import datetime
from typing import Annotated, TypeVar

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from app.api.deps import PlatformDep, ReaderDep
from app.api.problems import problem_body
from app.api.revocation import TokenWatch
from app.errors import AppError, InvalidInputError, UnauthorizedError, UnavailableError
from app.events.bus import EventBus
from app.events.model import Event, EventFilter, unknown_types
from app.events.selectors import expand_curie, follow_selector, narrowed, resolve_selector
from app.platform import Platform

router = APIRouter(tags=["events"])
KEEPALIVE_S = 15.0


def _bus(platform: Platform) -> EventBus:
    if platform.events is None:
        raise UnavailableError("Events need the database (telemetry is off)", code="no_events")
    return platform.events


def _filter(
    types: list[str],
    twins: list[str],
    classes: list[str],
    sites: list[str],
    graphs: list[str],
    ok: bool | None,
) -> EventFilter:
    bad = unknown_types(types)
    if bad:
        raise InvalidInputError(
            f"Unknown event type(s) {', '.join(bad)}", code="unknown_event_type"
        )
    return EventFilter.of(
        types=types,
        twins={expand_curie(t) for t in twins} if twins else None,
        classes=[expand_curie(c) for c in classes],
        sites=sites,
        graphs=graphs,
        ok=ok,
    )


def _sse_error(exc: AppError, instance: str) -> bytes:
    """The last message of a stream that ends on an error: its problem details."""
    body = problem_body(exc.status, exc.code, exc.title, exc.detail, instance, **exc.extra)
    return f"event: error\ndata: {json.dumps(body, separators=(',', ':'))}\n\n".encode()


def _sse(event: Event) -> bytes:
    body = json.dumps(event.as_dict(), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {body}\n\n".encode()


@router.get("/events", summary="Events: SSE stream (Accept: text/event-stream) or a JSON page")
async def events(
    request: Request,
    platform: PlatformDep,
    caller: ReaderDep,
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
    given = _filter(type, twin, class_, site, graph, ok)

    async def choose() -> frozenset[str]:
        assert selector is not None
        return await run_in_threadpool(resolve_selector, platform.sparql, selector)

    chosen = await choose() if selector else None  # a bad selector: a 400 before any stream
    if "text/event-stream" not in request.headers.get("accept", ""):
        flt = given if chosen is None else narrowed(given, chosen)
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
        # With a selector, the selection follows model changes (see follow_selector).
        source: AsyncIterator[Event] = (
            follow_selector(bus, given, choose, after_id=after_id, initial=chosen)
            if selector
            else bus.subscribe(given, after_id=after_id)
        )
        try:
            yield b": connected\n\n"
            async for event in _ticking(request, source, TokenWatch(platform.tokens, caller)):
                if event is None:
                    yield b": keep-alive\n\n"
                else:
                    yield _sse(event)
        except UnauthorizedError as exc:
            yield _sse_error(exc, request.url.path)
        finally:
            # Synchronous clean-up only: a stream ends by cancellation, and an await here
            # would be cancelled too. A generator source closes itself when _ticking
            # cancels its pending read.
            if not isinstance(source, AsyncGenerator):
                source.close()  # type: ignore[attr-defined]

    return _sse_response(stream())


@router.get("/events/readings", summary="Live readings as Server-Sent Events")
async def reading_events(
    request: Request,
    platform: PlatformDep,
    caller: ReaderDep,
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
            async for batch in _ticking(request, subscription, TokenWatch(platform.tokens, caller)):
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
        except UnauthorizedError as exc:
            yield _sse_error(exc, request.url.path)
        finally:
            subscription.close()

    return _sse_response(stream())


T = TypeVar("T")


async def _ticking(
    request: Request, source: AsyncIterator[T], watch: TokenWatch
) -> AsyncGenerator[T | None, None]:
    """The items of ``source``, and ``None`` after every quiet keep-alive interval; ends
    when the client has gone, and with ``UnauthorizedError`` once the caller's token is
    revoked (``watch``)."""
    pending: asyncio.Future[T] | None = None
    quiet = 0.0
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({pending}, timeout=min(KEEPALIVE_S, watch.every_s))
            await watch.check()
            if done:
                item, pending = pending.result(), None
                quiet = 0.0
                yield item
                continue
            quiet += min(KEEPALIVE_S, watch.every_s)
            if await request.is_disconnected():
                return
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
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
