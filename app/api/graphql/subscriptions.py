"""Subscriptions (graphql-transport-ws): live readings, model changes, platform events.

Everything comes from the event bus (``platform.events``), which every API process feeds
from PostgreSQL LISTEN/NOTIFY: a reading committed or an event published by any process
reaches subscriptions held on every other one.

``readings`` takes points by key (time-series UUID or id, IRI, label: see
app.points) and by selection: ``within`` an entity (with ``type``, reusing
``Entity.points``), all points of a ``type``, or a SPARQL ``selector`` whose first
variable binds the points. A selection is evaluated again whenever a model changes, so
points added to a level later are followed too. Each message is one committed batch.

Each event is executed with fresh loaders (see GraphQLContext.refresh): a point's
``latest`` under a subscription is the newest value, not the one a previous event saw.
``events`` with a selector follows model changes in log order (app.events.selectors.
follow_selector). A readings selection is evaluated again once a model change is
announced; a batch committed right after that change may still be filtered by the previous
selection.

Every subscription ends with ``token_revoked`` once its token is revoked (checked every
few seconds, see app.api.revocation).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import strawberry
from starlette.concurrency import run_in_threadpool
from strawberry.scalars import JSON

from app.api.graphql.context import GraphQLContext, Info
from app.api.graphql.fields import field, subscription
from app.api.graphql.loaders import Loaders, series_uuid
from app.api.graphql.types import EntityType, PointType, ReadingType, make_entity
from app.api.revocation import TokenWatch, while_authorised
from app.domain.iris import BRICK
from app.domain.telemetry import Reading
from app.errors import InvalidInputError, UnavailableError
from app.events.bus import EventBus
from app.events.model import Event, EventFilter, unknown_types
from app.events.selectors import MAX_SELECTED, expand_curie, follow_selector, resolve_selector
from app.graph.entities import EntityRecord, compact_iri, expand_iri
from app.platform import Platform

T = TypeVar("T")

#: Model event types ``modelChanges`` delivers.
MODEL_CHANGE_TYPES = ("model.*", "validation.failed")
#: Entities scanned per query when a readings selection names a class only.
_PAGE = 5000


@strawberry.type(name="LiveReading", description="A reading as it was committed.")
class LiveReadingType(ReadingType):
    timeseries_uuid: strawberry.ID = strawberry.field(
        description="The UUID the point's readings are stored under."
    )
    iri: strawberry.Private[str | None]
    record: strawberry.Private[EntityRecord | None]
    loaders: strawberry.Private[Loaders]

    @field("The point the reading belongs to (null if the model no longer has it).")
    async def point(self) -> PointType | None:
        record = self.record
        if record is None:
            if self.iri is None:
                return None
            record = await self.loaders.describe.load(self.iri)
            if not record.exists:
                return None
        return PointType(record=record, loaders=self.loaders)


@strawberry.type(name="Event", description="Something that happened to a model or a twin.")
class EventType:
    id: strawberry.ID = strawberry.field(description="Increasing; `after` resumes past it.")
    time: datetime
    type: str = strawberry.field(description="E.g. model.replaced, desired.set, command.queued.")
    ok: bool = strawberry.field(description="False for failures (validation.failed, ...).")
    twin: strawberry.ID | None = strawberry.field(description="The entity it is about, if any.")
    graph: str | None
    site: str | None
    classes: list[str] = strawberry.field(description="The twin's classes, superclasses too.")
    author: str | None
    data: JSON = strawberry.field(description="The event's details, as published.")
    loaders: strawberry.Private[Loaders]

    @field("The twin's entity in the current model (null when there is none).")
    async def entity(self) -> EntityType | None:
        if self.twin is None:
            return None
        record = await self.loaders.describe.load(self.twin)
        return make_entity(record, self.loaders) if record.exists else None

    @staticmethod
    def of(event: Event, loaders: Loaders) -> EventType:
        return EventType(
            id=strawberry.ID(str(event.id)),
            time=_time(event),
            type=event.type,
            ok=event.ok,
            twin=strawberry.ID(event.twin) if event.twin else None,
            graph=event.graph,
            site=event.site,
            classes=[compact_iri(c) for c in event.classes],
            author=event.author,
            data=JSON(dict(event.data)),
            loaders=loaders,
        )


@strawberry.type(
    name="ModelChange",
    description="A model write: committed (model.replaced, merged, updated, deleted) or "
    "refused (validation.failed, model.rejected; ok is false).",
)
class ModelChangeType:
    id: strawberry.ID
    time: datetime
    type: str
    ok: bool
    graph: str | None
    author: str | None
    revision: int | None = strawberry.field(description="The revision it recorded, if any.")
    added: int | None = strawberry.field(description="Triples added.")
    removed: int | None = strawberry.field(description="Triples removed.")
    message: str | None = strawberry.field(description="Why a write was refused.")
    data: JSON

    @staticmethod
    def of(event: Event) -> ModelChangeType:
        data = event.data

        def number(key: str) -> int | None:
            value = data.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        detail = data.get("detail")
        return ModelChangeType(
            id=strawberry.ID(str(event.id)),
            time=_time(event),
            type=event.type,
            ok=event.ok,
            graph=event.graph,
            author=event.author,
            revision=number("revision"),
            added=number("added"),
            removed=number("removed"),
            message=detail if isinstance(detail, str) else None,
            data=JSON(dict(data)),
        )


def _time(event: Event) -> datetime:
    assert event.time is not None, "stored events carry their time"
    return event.time


# -- choosing points -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PointSelection:
    """What ``readings`` follows: points by key, plus the points a selection finds."""

    keys: tuple[str, ...] = ()
    within: str | None = None
    type: str | None = None
    selector: str | None = None

    @property
    def everything(self) -> bool:
        return not (self.keys or self.within or self.type or self.selector)


async def select_points(
    platform: Platform, loaders: Loaders, selection: PointSelection, *, strict: bool
) -> dict[uuid.UUID, EntityRecord]:
    """The selected points by the UUID their readings arrive under, described.

    ``strict``: keys naming no point are an error (when subscribing); when the selection
    is evaluated again after a model change they are left out instead."""
    keyed: dict[str, uuid.UUID] = {}
    unknown: list[str] = []
    for key in selection.keys:
        ref = await run_in_threadpool(platform.points.resolve, key)
        if ref is None and expand_curie(key) != key:
            ref = await run_in_threadpool(platform.points.resolve, expand_curie(key))
        if ref is None:
            unknown.append(key)
        else:
            keyed[ref.point] = ref.uuid
    if unknown and strict:
        raise InvalidInputError(
            f"{len(unknown)} point(s) are not in the graph (first: {unknown[0]})",
            code="unknown_points",
            unknown=unknown[:100],
        )
    found = set(keyed)
    if selection.within is not None:
        wanted = expand_iri(selection.type or "brick:Point")
        found |= set(await loaders.points_within.load((expand_iri(selection.within), wanted)))
    elif selection.type is not None:
        found |= await _all_of_class(loaders, expand_iri(selection.type))
    if selection.selector is not None:
        found |= await run_in_threadpool(resolve_selector, platform.sparql, selection.selector)
    if len(found) > MAX_SELECTED:
        raise InvalidInputError(
            f"The selection holds {len(found)} points; the limit is {MAX_SELECTED}",
            code="selection_too_broad",
        )
    iris = sorted(found)
    records = await loaders.describe.load_many(iris)
    out: dict[uuid.UUID, EntityRecord] = {}
    for iri, record in zip(iris, records, strict=True):
        if iri in keyed:
            out[keyed[iri]] = record
        elif BRICK + "Point" in record.kinds or record.timeseries_id:
            # A selector may bind other entities too: only points have readings.
            out[series_uuid(record)] = record
    return out


async def _all_of_class(loaders: Loaders, cls: str) -> set[str]:
    out: set[str] = set()
    after = None
    while True:
        page = await loaders.find(
            classes=[cls], within=None, where=None, after=after, first=_PAGE, light=True
        )
        out.update(r.iri for r in page.records)
        if not page.has_next or not page.records or len(out) > MAX_SELECTED:
            return out
        after = page.records[-1].iri


# -- streams -------------------------------------------------------------------------------


async def _bus(platform: Platform) -> EventBus:
    bus = platform.events
    if bus is None:
        raise UnavailableError(
            "Subscriptions need the database (telemetry is off)", code="no_events"
        )
    if not bus.listening:
        await run_in_threadpool(bus.start)  # idempotent; the API's lifespan starts it
    return bus


async def _following_model(
    source: AsyncIterator[T], bus: EventBus, on_change: Callable[[], Awaitable[None]] | None
) -> AsyncGenerator[T, None]:
    """``source``'s items; while waiting for one, each committed model change runs
    ``on_change`` (re-evaluating a selection) first."""
    changes = bus.subscribe(EventFilter.of(types=["model.*"], ok=True)) if on_change else None
    item: asyncio.Future[T] | None = None
    change: asyncio.Future[Event] | None = None
    try:
        while True:
            if item is None:
                item = asyncio.ensure_future(anext(source))
            waiting: set[asyncio.Future[Any]] = {item}
            if changes is not None:
                if change is None:
                    change = asyncio.ensure_future(anext(changes))
                waiting.add(change)
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            if change is not None and change in done:
                change.result()
                change = None
                assert on_change is not None
                await on_change()
            if item in done:
                value = item.result()
                item = None
                yield value
    finally:
        for pending in (item, change):
            if pending is not None:
                pending.cancel()
        if changes is not None:
            changes.close()


async def _guarded(context: GraphQLContext, source: AsyncIterator[T]) -> AsyncGenerator[T, None]:
    """``source`` until the subscriber's token is revoked (see app.api.revocation)."""
    guarded = while_authorised(source, TokenWatch(context.platform.tokens, context.principal))
    try:
        async for item in guarded:
            yield item
    finally:
        await guarded.aclose()
        if isinstance(source, AsyncGenerator):
            await source.aclose()


def _event_filter(
    *,
    types: list[str] | None,
    twins: list[strawberry.ID] | None,
    classes: list[str] | None,
    sites: list[str] | None,
    graphs: list[str] | None,
    ok: bool | None,
) -> EventFilter:
    bad = unknown_types(types or ())
    if bad:
        raise InvalidInputError(
            f"Unknown event type(s) {', '.join(bad)}", code="unknown_event_type"
        )
    return EventFilter.of(
        types=types or (),
        twins=None if twins is None else [expand_curie(t) for t in twins],
        classes=[expand_curie(c) for c in classes or ()],
        sites=sites or (),
        graphs=graphs or (),
        ok=ok,
    )


def _after(after: strawberry.ID | None) -> int | None:
    if after is None:
        return None
    try:
        value = int(after)
    except ValueError:
        raise InvalidInputError("after must be an event id", code="bad_event_id") from None
    if value < 0:
        raise InvalidInputError("after must be an event id", code="bad_event_id")
    return value


@strawberry.type
class Subscription:
    @subscription(
        "Readings of the chosen points as they are committed (by any API "
        "process, from HTTP, GraphQL or MQTT), one message per committed batch. Choose "
        "points by key (UUID, time-series id, IRI or label), `within` an entity (with "
        "`type`, default brick:Point), by `type` alone, or by a SPARQL `selector` whose "
        "first variable binds them; nothing chosen: every point."
    )
    async def readings(
        self,
        info: Info,
        points: list[strawberry.ID] | None = None,
        within: strawberry.ID | None = None,
        type: str | None = None,
        selector: str | None = None,
    ) -> AsyncGenerator[list[LiveReadingType], None]:
        context = info.context
        platform = context.platform
        bus = await _bus(platform)
        selection = PointSelection(tuple(points or ()), within, type, selector)
        chosen: dict[uuid.UUID, EntityRecord] | None = None
        if not selection.everything:
            chosen = await select_points(platform, context.loaders, selection, strict=True)
        feed = bus.subscribe_readings(None if chosen is None else frozenset(chosen))

        async def reselect() -> None:
            nonlocal chosen
            fresh = Loaders(platform, context.trips)
            chosen = await select_points(platform, fresh, selection, strict=False)
            feed.points = frozenset(chosen)

        try:
            async for batch in _guarded(
                context, _following_model(feed, bus, None if selection.everything else reselect)
            ):
                loaders = context.refresh()
                yield await _live_readings(platform, loaders, batch, chosen)
        finally:
            feed.close()

    @subscription(
        "Model writes as they happen: committed changes with their revision "
        "and triple counts, and refused writes (validation.failed, model.rejected); "
        "optionally of some graphs only. `after` (an event id) first replays what "
        "followed it."
    )
    async def model_changes(
        self,
        info: Info,
        graphs: list[str] | None = None,
        after: strawberry.ID | None = None,
    ) -> AsyncGenerator[ModelChangeType, None]:
        after_id = _after(after)
        bus = await _bus(info.context.platform)
        flt = EventFilter.of(types=MODEL_CHANGE_TYPES, graphs=graphs or ())
        events = bus.subscribe(flt, after_id=after_id)
        try:
            async for event in _guarded(info.context, events):
                yield ModelChangeType.of(event)
        finally:
            events.close()

    @subscription(
        "Platform events (model.*, desired.set, reported, command.*, "
        "device.*, ...). All given filters must hold; each matches any of its values: "
        "`types` (command.* matches a family), `twins`, `classes` (superclasses "
        "match), `sites`, `graphs`, `ok`, and `selector`, a SPARQL SELECT whose first "
        "variable binds the twins (evaluated again when a model changes). `after` (an "
        "event id) first replays what followed it."
    )
    async def events(
        self,
        info: Info,
        types: list[str] | None = None,
        twins: list[strawberry.ID] | None = None,
        classes: list[str] | None = None,
        sites: list[str] | None = None,
        graphs: list[str] | None = None,
        ok: bool | None = None,
        selector: str | None = None,
        after: strawberry.ID | None = None,
    ) -> AsyncGenerator[EventType, None]:
        context = info.context
        platform = context.platform
        after_id = _after(after)
        given = _event_filter(
            types=types, twins=twins, classes=classes, sites=sites, graphs=graphs, ok=ok
        )
        bus = await _bus(platform)

        async def choose() -> frozenset[str]:
            assert selector is not None
            return await run_in_threadpool(resolve_selector, platform.sparql, selector)

        # With a selector, the selection follows model changes (see follow_selector).
        source: AsyncIterator[Event] = (
            follow_selector(bus, given, choose, after_id=after_id, initial=await choose())
            if selector is not None
            else bus.subscribe(given, after_id=after_id)
        )
        try:
            async for event in _guarded(context, source):
                yield EventType.of(event, context.refresh())
        finally:
            if not isinstance(source, AsyncGenerator):
                source.close()  # type: ignore[attr-defined]


async def _live_readings(
    platform: Platform,
    loaders: Loaders,
    batch: list[Reading],
    chosen: dict[uuid.UUID, EntityRecord] | None,
) -> list[LiveReadingType]:
    if chosen is None:  # every point: look the points up in the directory
        refs = await run_in_threadpool(lambda: [platform.points.get(r.point) for r in batch])
        iris = [ref.point if ref is not None else None for ref in refs]
        records: list[EntityRecord | None] = [None] * len(batch)
    else:
        records = [chosen.get(r.point) for r in batch]
        iris = [r.iri if r is not None else None for r in records]
    return [
        LiveReadingType(
            time=r.time,
            value=JSON(r.value),
            timeseries_uuid=strawberry.ID(str(r.point)),
            iri=iri,
            record=record,
            loaders=loaders,
        )
        for r, iri, record in zip(batch, iris, records, strict=True)
    ]


__all__ = ["Subscription", "select_points"]
