"""GraphQL at ``/graphql``: building entities joined to their telemetry (GraphiQL in a browser).

Mount with ``app.include_router(graphql_router())`` in ``create_app``.
"""

from __future__ import annotations

from strawberry.fastapi import GraphQLRouter

from app.api.graphql.context import GraphQLContext, get_context
from app.api.graphql.schema import build_schema


def graphql_router(
    *, path: str = "/graphql", max_depth: int = 10, max_cost: int = 200_000
) -> GraphQLRouter[GraphQLContext, None]:
    return GraphQLRouter(
        build_schema(max_depth=max_depth, max_cost=max_cost),
        path=path,
        context_getter=get_context,
        graphql_ide="graphiql",
        subscription_protocols=(),
        tags=["graphql"],
    )


__all__ = ["build_schema", "graphql_router"]
