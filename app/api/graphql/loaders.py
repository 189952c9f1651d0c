"""Per-request data loaders: every graph or telemetry read of a GraphQL request goes here.

A loader collects the keys its resolvers ask for during one tick of the event loop and
answers them with one SPARQL query or one SQL statement, so a request's round trips
depend on the shape of the query, not on how many entities or points it touches. Each
batch is counted in :class:`RoundTrips` (reported in the response's ``extensions``).

A ``Loaders`` reads one view of the model: the live store, or the model as of a moment
(``asOf``), whose telemetry then ends at that moment too (``latest`` is the newest
reading at or before it, time windows end there unless given).
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from starlette.concurrency import run_in_threadpool
from strawberry.dataloader import DataLoader

from app.domain.telemetry import Reading
from app.errors import InvalidInputError, UnavailableError
from app.graph.entities import EntityFilter, EntityRecord, EntityService, Page
from app.graph.store import GraphStore
from app.platform import Platform
from app.points import point_uuid, timeseries_uuid
from app.telemetry.readings import Agg, BucketRow, TelemetryStore

K = TypeVar("K")
V = TypeVar("V")

#: Aggregates that can be combined across points (first/last lose their times per point).
CROSS_POINT_AGGS = ("avg", "min", "max", "sum", "count")


@dataclass(slots=True)
class RoundTrips:
    sparql: int = 0
    sql: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"sparql": self.sparql, "sql": self.sql}


#: A readings query's arguments: start, end, bucket, agg, limit.
RangeParams = tuple[datetime, datetime, timedelta | None, Agg, int | None]


@dataclass(frozen=True, slots=True)
class RangeKey:
    point: uuid.UUID
    start: datetime
    end: datetime
    bucket: timedelta | None
    agg: Agg
    limit: int | None

    @property
    def params(self) -> RangeParams:
        return (self.start, self.end, self.bucket, self.agg, self.limit)


@dataclass(frozen=True, slots=True)
class AggregateKey:
    points: frozenset[uuid.UUID]
    start: datetime
    end: datetime
    bucket: timedelta
    agg: Agg


@dataclass(frozen=True, slots=True)
class AggregateRow:
    start: datetime
    value: float | None
    points: int


def series_uuid(record: EntityRecord) -> uuid.UUID:
    """The UUID a point's readings are stored under (see app.points)."""
    ts = record.timeseries_id
    return timeseries_uuid(ts) if ts else point_uuid(record.iri)


class Loaders:
    def __init__(
        self,
        platform: Platform,
        trips: RoundTrips,
        *,
        store: GraphStore | None = None,
        as_of: datetime | None = None,
    ) -> None:
        """``store``: the model view to read (the live store by default); ``as_of``: the
        moment that view shows, which telemetry then defaults to as well."""
        self._platform = platform
        self.trips = trips
        self.as_of = as_of
        #: "Now" for this request: the end of time windows a query leaves open, fixed
        #: once so that look-ahead and field resolvers agree on it.
        self.now = datetime.now(UTC)
        self.entities = EntityService(
            store if store is not None else platform.store,
            hidden_graphs=platform.models.hidden_graphs,
            timeout_s=platform.settings.query_timeout_s,
        )
        self.describe: DataLoader[str, EntityRecord] = DataLoader(load_fn=self._describe)
        self.classes: DataLoader[str, frozenset[str]] = DataLoader(load_fn=self._classes)
        self.relations: DataLoader[str, dict[str, list[str]]] = DataLoader(load_fn=self._relations)
        self.points_within: DataLoader[tuple[str, str], list[str]] = DataLoader(
            load_fn=self._points_within
        )
        self.latest: DataLoader[uuid.UUID, Reading | None] = DataLoader(load_fn=self._latest)
        self.range: DataLoader[RangeKey, list[Any]] = DataLoader(load_fn=self._range)
        self.aggregate: DataLoader[AggregateKey, list[AggregateRow]] = DataLoader(
            load_fn=self._aggregate
        )
        #: Telemetry fetched ahead for a page of points (see ``prefetch``), read
        #: synchronously by Point.latest/readings; a miss goes through the loaders. A
        #: failed query leaves its exception for the fields it was to serve to raise.
        self.known_latest: dict[str, Reading | None | Exception] = {}
        self.known_ranges: dict[tuple[str, RangeParams], list[Any] | Exception] = {}

    @property
    def default_end(self) -> datetime:
        """Where a time window ends when a query does not say: ``asOf``, else now."""
        return self.as_of if self.as_of is not None else self.now

    # -- graph -------------------------------------------------------------------------

    async def _sparql(self, fn: Callable[..., V], *args: Any, **kwargs: Any) -> V:
        self.trips.sparql += 1
        return await run_in_threadpool(fn, *args, **kwargs)

    async def find(
        self,
        *,
        classes: Sequence[str],
        within: str | None,
        where: EntityFilter | None,
        after: str | None,
        first: int,
        light: bool = False,
    ) -> Page:
        """One page of matching entities, described in the same query (primes describe).

        ``light`` describes only kinds and time series ids (see EntityService.find); such
        records are not primed, and entities with several references, whose time series
        only the full description settles, are described in full (one more query)."""
        page = await self._sparql(
            self.entities.find,
            classes=classes,
            within=within,
            where=where,
            after=after,
            first=first,
            light=light,
        )
        if not light:
            for record in page.records:
                self.describe.prime(record.iri, record)
            return page
        several = [r.iri for r in page.records if len(r.external_refs) > 1]
        if not several:
            return page
        full = dict(zip(several, await self.describe.load_many(several), strict=True))
        return Page([full.get(r.iri, r) for r in page.records], page.has_next)

    async def _describe(self, keys: list[str]) -> list[EntityRecord]:
        found = await self._sparql(self.entities.describe, keys)
        return [found[k] for k in keys]

    async def _classes(self, keys: list[str]) -> list[frozenset[str]]:
        found = await self._sparql(self.entities.classes, keys)
        return [found.get(k, frozenset()) for k in keys]

    async def _relations(self, keys: list[str]) -> list[dict[str, list[str]]]:
        found = await self._sparql(self.entities.relations, keys)
        return [found[k] for k in keys]

    async def _points_within(self, keys: list[tuple[str, str]]) -> list[list[str]]:
        found = await self._sparql(self.entities.points_within, keys)
        return [found.get(k, []) for k in keys]

    # -- telemetry ---------------------------------------------------------------------

    def _telemetry(self) -> TelemetryStore:
        if self._platform.telemetry is None:
            raise UnavailableError("Telemetry storage is not configured", code="no_telemetry")
        return self._platform.telemetry

    async def prefetch(
        self, points: Sequence[EntityRecord], *, latest: bool, ranges: Sequence[RangeParams]
    ) -> None:
        """Latest readings and ranges of a page of points, ahead of their fields: one SQL
        statement per kind (per parameter set for ranges), run concurrently. Answers are
        kept by point IRI (``known_latest``, ``known_ranges``)."""
        if not points or self._platform.telemetry is None:
            return  # without telemetry, the fields report it through the loaders
        series = {r.iri: series_uuid(r) for r in points}
        jobs: list[Awaitable[None]] = []
        if latest:
            jobs.append(self._prefetch_latest(series))
        jobs += [self._prefetch_range(series, params) for params in dict.fromkeys(ranges)]
        await asyncio.gather(*jobs)

    async def _prefetch_latest(self, series: dict[str, uuid.UUID]) -> None:
        known = self.known_latest
        points = list(dict.fromkeys(series.values()))
        try:
            found = await self._latest(points)
        except Exception as exc:  # raised by each latest field, as through the loader
            known.update(dict.fromkeys(series, exc))
            return
        by_point = dict(zip(points, found, strict=True))
        for iri, point in series.items():
            known[iri] = by_point[point]

    async def _prefetch_range(self, series: dict[str, uuid.UUID], params: RangeParams) -> None:
        known = self.known_ranges
        try:
            found: dict[uuid.UUID, Any] = await self._range_query(list(series.values()), params)
        except Exception as exc:  # raised by each readings field with these arguments
            for iri in series:
                known[(iri, params)] = exc
            return
        for iri, point in series.items():
            known[(iri, params)] = found[point]

    async def _latest(self, keys: list[uuid.UUID]) -> list[Reading | None]:
        store = self._telemetry()
        self.trips.sql += 1
        found = await run_in_threadpool(lambda: store.latest(points=keys, at=self.as_of))
        return [found.get(k) for k in keys]

    async def _range(self, keys: list[RangeKey]) -> list[list[Any]]:
        groups: dict[RangeParams, list[uuid.UUID]] = defaultdict(list)
        for k in keys:
            groups[k.params].append(k.point)
        answers = dict(
            zip(
                groups,
                await asyncio.gather(
                    *(self._range_query(p, params) for params, p in groups.items())
                ),
                strict=True,
            )
        )
        return [answers[k.params][k.point] for k in keys]

    async def _range_query(
        self, points: Sequence[uuid.UUID], params: RangeParams
    ) -> dict[uuid.UUID, Any]:
        store = self._telemetry()
        start, end, bucket, agg, limit = params
        self.trips.sql += 1
        return await run_in_threadpool(
            store.range_many,
            points=sorted(set(points)),
            start=start,
            end=end,
            bucket=bucket,
            agg=agg,
            limit=limit if bucket is None else None,
        )

    async def _aggregate(self, keys: list[AggregateKey]) -> list[list[AggregateRow]]:
        """Per-point buckets for the union of all keys' points (one SQL per parameter set),
        then combined per key: avg is the mean of the points' averages (each point weighs
        the same, however often it reports), min/max of theirs, sum and count add up."""
        store = self._telemetry()
        groups: dict[tuple[Any, ...], set[uuid.UUID]] = defaultdict(set)
        for k in keys:
            if k.agg not in CROSS_POINT_AGGS:
                raise InvalidInputError(
                    f"aggregate over points takes one of {', '.join(CROSS_POINT_AGGS)}",
                    code="bad_aggregate",
                )
            groups[(k.start, k.end, k.bucket, k.agg)] |= k.points
        per_point: dict[tuple[Any, ...], dict[uuid.UUID, Any]] = {}
        for params, points in groups.items():
            start, end, bucket, agg = params
            if not points:
                per_point[params] = {}
                continue
            self.trips.sql += 1
            per_point[params] = await run_in_threadpool(
                store.range_many,
                points=sorted(points),
                start=start,
                end=end,
                bucket=bucket,
                agg=agg,
            )
        return [
            _combine(per_point[(k.start, k.end, k.bucket, k.agg)], k.points, k.agg) for k in keys
        ]


def _combine(
    rows: dict[uuid.UUID, list[BucketRow]], points: frozenset[uuid.UUID], agg: Agg
) -> list[AggregateRow]:
    by_start: dict[datetime, list[float]] = defaultdict(list)
    for p in points:
        for row in rows.get(p, ()):
            if isinstance(row.value, int | float):
                by_start[row.start].append(float(row.value))
    out = []
    for start in sorted(by_start):
        values = by_start[start]
        if agg == "avg":
            value = sum(values) / len(values)
        elif agg == "min":
            value = min(values)
        elif agg == "max":
            value = max(values)
        else:
            value = sum(values)
        out.append(AggregateRow(start, value, len(values)))
    return out
