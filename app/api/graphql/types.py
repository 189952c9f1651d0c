"""GraphQL object types: entities of a building model, points with their readings.

Every entity type implements ``Entity``; which one a node becomes is decided by its
classes (materialised superclasses included): Point, Equipment, Site, Building, Level,
Space, or OtherEntity. Relationship fields read both directions of a relation (``hasPart``
answers from ``hasPart`` and from ``isPartOf`` triples) and go through data loaders.

Each entity carries the loaders it was read with: the live model's, or those of the model
as of a moment (``asOf``), so everything reached from it, telemetry included, answers
from that same view.
"""

from __future__ import annotations

import base64
import enum
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

import strawberry
from graphql import GraphQLResolveInfo
from strawberry.scalars import JSON

from app.api.graphql.context import Info
from app.api.graphql.fields import field
from app.api.graphql.loaders import (
    AggregateKey,
    AggregateRow,
    Loaders,
    RangeKey,
    RangeParams,
    series_uuid,
)
from app.api.telemetry import parse_bucket
from app.domain.iris import BRICK, REC
from app.domain.telemetry import Reading
from app.errors import InvalidInputError
from app.graph.entities import EntityRecord, compact_iri, expand_iri, most_specific
from app.telemetry.readings import Agg, BucketRow

#: Raw readings per point unless a smaller ``limit`` is asked for.
MAX_READINGS = 100_000


@strawberry.enum(description="How readings are combined per bucket.")
class AggregateFunction(enum.Enum):
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    SUM = "sum"
    COUNT = "count"
    FIRST = "first"
    LAST = "last"


def agg_name(agg: AggregateFunction) -> Agg:
    value: Agg = agg.value
    return value


@strawberry.type(name="Reading", description="A reading, or one bucket of aggregated readings.")
class ReadingType:
    time: datetime = strawberry.field(description="Reading time, or the bucket's start.")
    value: JSON | None = strawberry.field(description="Number, boolean, string or null, as stored.")

    @field("The value as a number (booleans as 0/1), else null.")
    def number(self) -> float | None:
        v = self.value
        if isinstance(v, bool | int | float):
            return float(v)
        return None

    @staticmethod
    def of(row: Reading | BucketRow) -> ReadingType:
        if isinstance(row, Reading):
            return ReadingType(time=row.time, value=JSON(row.value))
        return ReadingType(time=row.start, value=JSON(row.value))


@strawberry.type(name="AggregateBucket", description="One bucket of an aggregate over points.")
class AggregateBucketType:
    time: datetime = strawberry.field(description="The bucket's start.")
    value: float | None
    points: int = strawberry.field(description="How many points had data in this bucket.")

    @staticmethod
    def of(row: AggregateRow) -> AggregateBucketType:
        return AggregateBucketType(time=row.start, value=row.value, points=row.points)


@strawberry.type(name="Property")
class PropertyType:
    predicate: str
    value: str


@strawberry.type(
    name="ExternalReference",
    description="A ref:hasExternalReference node: a time series, a BACnet object, ...",
)
class ExternalReferenceType:
    kind: str | None = strawberry.field(
        description="The reference's class, e.g. ref:BACnetReference."
    )
    timeseries_id: str | None
    properties: list[PropertyType]


def _check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInputError("start and end need a time zone offset", code="bad_time")


def _bucket(text: str) -> Any:
    width = parse_bucket(text)
    if width is None:
        raise InvalidInputError("bucket is required, e.g. 1h", code="bad_bucket")
    return width


async def _related(root: EntityType, name: str, type: str | None) -> list[EntityType]:
    loaders = root.loaders
    rels = await loaders.relations.load(root.record.iri)
    iris = rels.get(name, [])
    if type is not None:
        wanted = expand_iri(type)
        classes = await loaders.classes.load_many(iris)
        iris = [i for i, cs in zip(iris, classes, strict=True) if wanted in cs]
    records = await loaders.describe.load_many(iris)
    return [make_entity(r, loaders) for r in records if r.exists]


def _relation(name: str, description: str) -> Any:
    async def resolve(root: EntityType, type: str | None = None) -> list[EntityType]:
        return await _related(root, name, type)

    return strawberry.field(resolver=resolve, description=description)


@strawberry.interface(name="Entity", description="A node of a building model.")
class EntityType:
    record: strawberry.Private[EntityRecord]
    #: The loaders of the model view this entity was read from (live or as of a moment).
    loaders: strawberry.Private[Loaders]

    @field("The entity's IRI.")
    def id(self) -> strawberry.ID:
        return strawberry.ID(self.record.iri)

    @field("Its rdfs:label (the first, if several).")
    def label(self) -> str | None:
        return self.record.labels[0] if self.record.labels else None

    @strawberry.field
    def labels(self) -> list[str]:
        return list(self.record.labels)

    @field(
        "Every class, inferred superclasses included, as prefixed names where "
        "a standard prefix fits (brick:, rec:, ...)."
    )
    async def classes(self) -> list[str]:
        classes = await self.loaders.classes.load(self.record.iri)
        return sorted(compact_iri(c) for c in classes)

    @field("The most specific classes (those no other class refines).")
    async def types(self, info: Info) -> list[str]:
        classes = await self.loaders.classes.load(self.record.iri)
        hierarchy = info.context.platform.models.hierarchy
        return [compact_iri(c) for c in most_specific(classes, hierarchy)]

    @field("Brick tags (brick:hasTag), where the model states them.")
    def tags(self) -> list[str]:
        return [compact_iri(t) for t in self.record.tags]

    @strawberry.field
    def external_references(self) -> list[ExternalReferenceType]:
        return [
            ExternalReferenceType(
                kind=compact_iri(r.kind) if r.kind else None,
                timeseries_id=r.timeseries_id,
                properties=[
                    PropertyType(predicate=compact_iri(p), value=v) for p, v in r.properties
                ],
            )
            for r in self.record.external_refs
        ]

    has_part: list[EntityType] = _relation("hasPart", "brick:/rec:hasPart (or isPartOf inverted).")
    is_part_of: list[EntityType] = _relation("isPartOf", "brick:/rec:isPartOf (or hasPart).")
    has_point: list[EntityType] = _relation("hasPoint", "brick:hasPoint (or isPointOf).")
    is_point_of: list[EntityType] = _relation("isPointOf", "brick:isPointOf (or hasPoint).")
    feeds: list[EntityType] = _relation("feeds", "brick:feeds (or isFedBy).")
    is_fed_by: list[EntityType] = _relation("isFedBy", "brick:isFedBy (or feeds).")
    has_location: list[EntityType] = _relation("hasLocation", "brick:hasLocation.")
    is_location_of: list[EntityType] = _relation("isLocationOf", "brick:isLocationOf.")
    meters: list[EntityType] = _relation("meters", "brick:meters (or isMeteredBy).")
    is_metered_by: list[EntityType] = _relation("isMeteredBy", "brick:isMeteredBy.")

    @field(
        "Points of a class inside this entity: reached through isPartOf, "
        "isPointOf and hasLocation (either direction), transitively."
    )
    async def points(self, type: str = "brick:Point") -> list[PointType]:
        loaders = self.loaders
        iris = await loaders.points_within.load((self.record.iri, expand_iri(type)))
        records = await loaders.describe.load_many(iris)
        return [PointType(record=r, loaders=loaders) for r in records]

    @field(
        "One series over every point of `pointType` inside this entity: `agg` "
        "per point and bucket, then combined across points (avg: mean of the points' "
        "values; min/max; sum and count add up). `end` defaults to asOf, else now."
    )
    async def aggregate(
        self,
        point_type: str,
        start: datetime,
        end: datetime | None = None,
        bucket: str = "1h",
        agg: AggregateFunction = AggregateFunction.AVG,
    ) -> list[AggregateBucketType]:
        return await aggregate_within(
            self.loaders, self.record.iri, point_type, start, end, bucket, agg
        )


async def aggregate_within(
    loaders: Loaders,
    within: str,
    point_type: str,
    start: datetime,
    end: datetime | None,
    bucket: str,
    agg: AggregateFunction,
) -> list[AggregateBucketType]:
    end = loaders.default_end if end is None else end
    _check_range(start, end)
    width = _bucket(bucket)
    iris = await loaders.points_within.load((within, expand_iri(point_type)))
    records = await loaders.describe.load_many(iris)
    points = frozenset(series_uuid(r) for r in records)
    key = AggregateKey(points, start, end, width, agg_name(agg))
    return [AggregateBucketType.of(row) for row in await loaders.aggregate.load(key)]


@strawberry.type(name="Site")
class SiteType(EntityType):
    pass


@strawberry.type(name="Building")
class BuildingType(EntityType):
    pass


@strawberry.type(name="Level")
class LevelType(EntityType):
    @field("rec:levelNumber, where stated.")
    def level_number(self) -> int | None:
        return self.record.level_number


@strawberry.type(name="Space", description="Rooms, zones and other spaces.")
class SpaceType(EntityType):
    pass


@strawberry.type(name="Equipment")
class EquipmentType(EntityType):
    pass


@strawberry.type(name="OtherEntity", description="A node of none of the kinds above.")
class OtherEntityType(EntityType):
    pass


@strawberry.type(name="Point", description="A Brick point, joined to its telemetry.")
class PointType(EntityType):
    @field("ref:hasTimeseriesId as stated in the model.")
    def timeseries_id(self) -> str | None:
        return self.record.timeseries_id

    @field("The UUID its readings are stored under.")
    def timeseries_uuid(self) -> str:
        return str(series_uuid(self.record))

    @field("brick:hasUnit (QUDT unit), as a prefixed name.")
    def unit(self) -> str | None:
        return compact_iri(self.record.units[0]) if self.record.units else None

    # latest and readings are plain (synchronous) fields: a page of points has them
    # fetched ahead (see schema._page), which spares graphql-core an awaitable per field;
    # points reached otherwise (relationships, Entity.points) answer later, through the
    # loaders, so round trips stay bounded everywhere. schema.build_schema has
    # graphql-core call resolve_latest/resolve_readings directly (see DIRECT_RESOLVERS).

    @field(
        "The newest reading, if any (under asOf: the newest at or before that moment).",
        graphql_type=ReadingType | None,
    )
    def latest(self) -> ReadingType | None | Awaitable[ReadingType | None]:
        return resolve_latest(self)

    @field(
        "Readings in [start, end), oldest first; with `bucket` (30s, 5m, 1h, "
        "1d, ...) one `agg` value per bucket that has readings. `end` defaults to "
        "asOf, else now.",
        graphql_type=list[ReadingType],
    )
    def readings(
        self,
        start: datetime,
        end: datetime | None = None,
        bucket: str | None = None,
        agg: AggregateFunction = AggregateFunction.AVG,
        limit: int = 1000,
    ) -> list[ReadingType] | Awaitable[list[ReadingType]]:
        return resolve_readings(self, start, end, bucket, agg, limit)


def resolve_latest(point: PointType) -> ReadingType | None | Awaitable[ReadingType | None]:
    loaders = point.loaders
    found = loaders.known_latest.get(point.record.iri, _UNKNOWN)
    if found is _UNKNOWN:
        return _latest_later(loaders.latest.load(series_uuid(point.record)))
    if isinstance(found, Exception):
        raise found
    return ReadingType.of(found) if found is not None else None


def resolve_readings(
    point: PointType,
    start: datetime,
    end: datetime | None = None,
    bucket: str | None = None,
    agg: AggregateFunction = AggregateFunction.AVG,
    limit: int = 1000,
) -> list[ReadingType] | Awaitable[list[ReadingType]]:
    loaders = point.loaders
    end = loaders.default_end if end is None else end
    params = range_params(start, end, bucket, agg, limit)
    rows = loaders.known_ranges.get((point.record.iri, params))
    if rows is None:
        key = RangeKey(series_uuid(point.record), *params)
        return _readings_later(loaders.range.load(key))
    if isinstance(rows, Exception):
        raise rows
    return [ReadingType.of(r) for r in rows]


_UNKNOWN: Any = object()


def _direct_id(root: EntityType, info: GraphQLResolveInfo[Any], **_: Any) -> str:
    return root.record.iri


def _direct_latest(
    root: PointType, info: GraphQLResolveInfo[Any], **_: Any
) -> ReadingType | None | Awaitable[ReadingType | None]:
    return resolve_latest(root)


def _direct_readings(
    root: PointType, info: GraphQLResolveInfo[Any], **kwargs: Any
) -> list[ReadingType] | Awaitable[list[ReadingType]]:
    return resolve_readings(root, **kwargs)


_ENTITY_TYPE_NAMES = ("Point", "Equipment", "Site", "Building", "Level", "Space", "OtherEntity")

#: graphql-core resolvers for the fields a page of points asks for a thousand times:
#: (type, field) -> resolver taking graphql-core's info and coerced arguments (their
#: names are their Python names). They do what the strawberry resolvers above do, without
#: strawberry's per-call wrapping (an Info, argument conversion, the extension chain:
#: about half of graphql execution for 1,000 points). None of these fields has field
#: extensions or permissions that the wrapping would have run.
DIRECT_RESOLVERS: dict[tuple[str, str], Callable[..., Any]] = {
    ("Point", "latest"): _direct_latest,
    ("Point", "readings"): _direct_readings,
    **{(kind, "id"): _direct_id for kind in _ENTITY_TYPE_NAMES},
}


async def _latest_later(found: Awaitable[Reading | None]) -> ReadingType | None:
    reading = await found
    return ReadingType.of(reading) if reading is not None else None


async def _readings_later(rows: Awaitable[list[Any]]) -> list[ReadingType]:
    return [ReadingType.of(r) for r in await rows]


def range_params(
    start: datetime, end: datetime, bucket: str | None, agg: AggregateFunction, limit: int
) -> RangeParams:
    _check_range(start, end)
    if not 1 <= limit <= MAX_READINGS:
        raise InvalidInputError(f"limit must be 1..{MAX_READINGS}", code="bad_limit")
    return (start, end, parse_bucket(bucket), agg_name(agg), limit)


_KINDS: tuple[tuple[tuple[str, ...], type[EntityType]], ...] = (
    ((BRICK + "Point",), PointType),
    ((BRICK + "Equipment",), EquipmentType),
    ((REC + "Site", BRICK + "Site"), SiteType),
    ((REC + "Building", BRICK + "Building"), BuildingType),
    ((REC + "Level", BRICK + "Floor"), LevelType),
    (
        (REC + "Space", BRICK + "Space", BRICK + "Location", REC + "Zone", BRICK + "Zone"),
        SpaceType,
    ),
)


def make_entity(record: EntityRecord, loaders: Loaders) -> EntityType:
    for classes, cls in _KINDS:
        if not record.kinds.isdisjoint(classes):
            return cls(record=record, loaders=loaders)
    return OtherEntityType(record=record, loaders=loaders)


# -- connections ---------------------------------------------------------------------------

E = TypeVar("E")


@strawberry.type
class PageInfo:
    has_next_page: bool
    end_cursor: str | None


@strawberry.type
class Edge(Generic[E]):
    cursor: str
    node: E


@strawberry.type(description="A page of entities ordered by IRI; `after` takes `endCursor`.")
class Connection(Generic[E]):
    edges: list[Edge[E]]
    nodes: list[E]
    page_info: PageInfo


def encode_cursor(iri: str) -> str:
    return base64.urlsafe_b64encode(iri.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return base64.urlsafe_b64decode(padded.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise InvalidInputError("after is not a cursor of this API", code="bad_cursor") from None


def connection(
    items: Sequence[tuple[E, str]], last_scanned: str | None, has_next: bool
) -> Connection[E]:
    """``items`` are (node, IRI); the end cursor is the last IRI scanned, kept or not."""
    edges = [Edge(cursor=encode_cursor(iri), node=node) for node, iri in items]
    return Connection(
        edges=edges,
        nodes=[node for node, _ in items],
        page_info=PageInfo(
            has_next_page=has_next,
            end_cursor=encode_cursor(last_scanned) if last_scanned else None,
        ),
    )
