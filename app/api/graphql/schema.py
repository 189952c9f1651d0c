"""The schema: entry points into the building graph, mutations, subscriptions, limits.

Every model entry point takes ``asOf``: the model as it was at that moment (rebuilt from
its revisions, see app.history.asof), with telemetry ending there too.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, TypeVar

import strawberry
from graphql import GraphQLError, GraphQLObjectType
from strawberry.extensions import MaxAliasesLimiter, QueryDepthLimiter, SchemaExtension
from strawberry.types import ExecutionContext

from app.api.graphql.context import Info
from app.api.graphql.execution import FastExecutionContext
from app.api.graphql.extensions import AccessGuard, ErrorCodes, RoundTripsExtension
from app.api.graphql.fields import field
from app.api.graphql.loaders import Loaders
from app.api.graphql.lookahead import LIGHT_FIELDS, node_fields, readings_params
from app.api.graphql.mutations import Mutation
from app.api.graphql.subscriptions import Subscription
from app.api.graphql.types import (
    DIRECT_RESOLVERS,
    AggregateBucketType,
    AggregateFunction,
    BuildingType,
    Connection,
    EntityType,
    EquipmentType,
    LevelType,
    OtherEntityType,
    PointType,
    SiteType,
    SpaceType,
    aggregate_within,
    connection,
    decode_cursor,
    make_entity,
)
from app.domain.iris import BRICK, REC
from app.errors import InvalidInputError
from app.graph.entities import EntityFilter, expand_iri

E = TypeVar("E", bound=EntityType)

#: Largest page a connection returns.
MAX_FIRST = 5000

_SITES = (REC + "Site", BRICK + "Site")
_BUILDINGS = (REC + "Building", BRICK + "Building")
_LEVELS = (REC + "Level", BRICK + "Floor")
_SPACES = (REC + "Space", BRICK + "Space", BRICK + "Location")

AS_OF = strawberry.argument(
    description="Answer from the model as it was at this moment (with a zone offset); "
    "telemetry then ends there too: latest is the newest reading at or before it."
)


@strawberry.input(description="Further conditions on entities.")
class EntityFilterInput:
    label_contains: str | None = strawberry.field(
        default=None, description="Case-insensitive substring of an rdfs:label."
    )
    tags: list[str] | None = strawberry.field(
        default=None, description="Brick tags the entity must all have (brick:hasTag)."
    )


async def _page(
    info: Info,
    as_of: datetime | None,
    cls: type[E],
    classes: tuple[str, ...],
    type: str | None,
    within: strawberry.ID | None,
    where: EntityFilterInput | None,
    first: int,
    after: str | None,
) -> Connection[E]:
    """A page of entities; typed entry points keep only entities of their kind (a page
    may then hold fewer than ``first``; ``endCursor`` still moves past all it scanned)."""
    if not 0 <= first <= MAX_FIRST:
        raise InvalidInputError(f"first must be 0..{MAX_FIRST}", code="bad_first")
    chosen = [expand_iri(type)] if type else list(classes)
    flt = None
    if where is not None:
        flt = EntityFilter(
            label_contains=where.label_contains,
            tags=tuple(expand_iri(t) for t in where.tags or ()),
        )
    loaders = await info.context.loaders_at(as_of)
    selected = node_fields(info)
    names = {f.name for f in selected}
    page = await loaders.find(
        classes=chosen,
        within=expand_iri(within) if within else None,
        where=flt,
        after=decode_cursor(after) if after else None,
        first=first,
        # Typed connections only: ``entities`` lists every match the full description
        # finds (see EntityService.find), and its nodes may need more anyway.
        light=cls is not EntityType and names <= LIGHT_FIELDS,
    )
    pairs = [(make_entity(r, loaders), r.iri) for r in page.records]
    kept = [(e, i) for e, i in pairs if isinstance(e, cls)]
    points = [e.record for e, _ in kept if isinstance(e, PointType)]
    if points and ("latest" in names or "readings" in names):
        await loaders.prefetch(
            points,
            latest="latest" in names,
            ranges=readings_params(selected, loaders.default_end),
        )
    last = page.records[-1].iri if page.records else None
    return connection(kept, last, page.has_next)


@strawberry.type
class Query:
    @field("One entity by IRI (null if the graph does not know it).")
    async def entity(
        self,
        info: Info,
        id: strawberry.ID,
        as_of: Annotated[datetime | None, AS_OF] = None,
    ) -> EntityType | None:
        loaders = await info.context.loaders_at(as_of)
        record = await loaders.describe.load(expand_iri(id))
        return make_entity(record, loaders) if record.exists else None

    @field(
        "Entities of a class (prefixed name or IRI, e.g. brick:VAV; superclasses "
        "match their subclasses), optionally inside `within` (transitively through "
        "isPartOf, isPointOf, hasLocation), ordered by IRI."
    )
    async def entities(
        self,
        info: Info,
        type: str | None = None,
        within: strawberry.ID | None = None,
        where: EntityFilterInput | None = None,
        first: int = 100,
        after: str | None = None,
        as_of: Annotated[datetime | None, AS_OF] = None,
    ) -> Connection[EntityType]:
        return await _page(info, as_of, EntityType, (), type, within, where, first, after)

    @strawberry.field
    async def sites(
        self,
        info: Info,
        first: int = 100,
        after: str | None = None,
        as_of: Annotated[datetime | None, AS_OF] = None,
    ) -> Connection[SiteType]:
        return await _page(info, as_of, SiteType, _SITES, None, None, None, first, after)

    @strawberry.field
    async def buildings(
        self,
        info: Info,
        within: strawberry.ID | None = None,
        first: int = 100,
        after: str | None = None,
        as_of: Annotated[datetime | None, AS_OF] = None,
    ) -> Connection[BuildingType]:
        return await _page(info, as_of, BuildingType, _BUILDINGS, None, within, None, first, after)

    @strawberry.field
    async def levels(
        self,
        info: Info,
        within: strawberry.ID | None = None,
        first: int = 100,
        after: str | None = None,
        as_of: Annotated[datetime | None, AS_OF] = None,
    ) -> Connection[LevelType]:
        return await _page(info, as_of, LevelType, _LEVELS, None, within, None, first, after)

    @field("Rooms, zones and other spaces; `type` narrows, e.g. rec:HVACZone.")
    async def spaces(
        self,
        info: Info,
        type: str | None = None,
        within: strawberry.ID | None = None,
        where: EntityFilterInput | None = None,
        first: int = 100,
        after: str | None = None,
        as_of: Annotated[datetime | None, AS_OF] = None,
    ) -> Connection[SpaceType]:
        return await _page(info, as_of, SpaceType, _SPACES, type, within, where, first, after)

    @strawberry.field
    async def equipment(
        self,
        info: Info,
        type: str | None = None,
        within: strawberry.ID | None = None,
        where: EntityFilterInput | None = None,
        first: int = 100,
        after: str | None = None,
        as_of: Annotated[datetime | None, AS_OF] = None,
    ) -> Connection[EquipmentType]:
        return await _page(
            info, as_of, EquipmentType, (BRICK + "Equipment",), type, within, where, first, after
        )

    @field(
        'Points, e.g. points(type: "brick:Zone_Air_Temperature_Sensor", '
        "within: <level>), each with latest and readings."
    )
    async def points(
        self,
        info: Info,
        type: str | None = None,
        within: strawberry.ID | None = None,
        where: EntityFilterInput | None = None,
        first: int = 100,
        after: str | None = None,
        as_of: Annotated[datetime | None, AS_OF] = None,
    ) -> Connection[PointType]:
        return await _page(
            info, as_of, PointType, (BRICK + "Point",), type, within, where, first, after
        )

    @field("One series over every point of `pointType` inside `within` (see Entity.aggregate).")
    async def aggregate(
        self,
        info: Info,
        point_type: str,
        within: strawberry.ID,
        start: datetime,
        end: datetime | None = None,
        bucket: str = "1h",
        agg: AggregateFunction = AggregateFunction.AVG,
        as_of: Annotated[datetime | None, AS_OF] = None,
    ) -> list[AggregateBucketType]:
        loaders: Loaders = await info.context.loaders_at(as_of)
        return await aggregate_within(
            loaders, expand_iri(within), point_type, start, end, bucket, agg
        )


class TwinGraphSchema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Logging happens in ErrorCodes (internal errors only, with a request id)."""


def build_schema(
    *, max_depth: int = 10, max_cost: int = 200_000, max_aliases: int = 50
) -> strawberry.Schema:
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        functools.partial(QueryDepthLimiter, max_depth=max_depth),
        functools.partial(MaxAliasesLimiter, max_alias_count=max_aliases),
        functools.partial(AccessGuard, max_cost=max_cost),
        ErrorCodes,
        RoundTripsExtension,
    ]
    for ext in extensions:
        cls = ext.func if isinstance(ext, functools.partial) else ext
        if getattr(cls, "resolve", None) is not SchemaExtension.resolve:
            # FastExecutionContext completes plain leaf objects without field resolvers.
            raise TypeError(f"{cls!r} hooks resolve, which FastExecutionContext skips")
    schema = TwinGraphSchema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        # No field returns OtherEntity by name (only the Entity interface), so list it.
        types=[OtherEntityType],
        extensions=extensions,
        execution_context_class=FastExecutionContext,
    )
    core = schema._schema  # noqa: SLF001 - the graphql-core schema strawberry built
    for (type_name, field_name), resolver in DIRECT_RESOLVERS.items():
        graphql_type = core.get_type(type_name)
        if isinstance(graphql_type, GraphQLObjectType):  # types no field returns are left out
            graphql_type.fields[field_name].resolve = resolver
    return schema
