"""GraphQL at ``/graphql``: building entities joined to their telemetry (GraphiQL in a browser).

Queries and mutations over HTTP; subscriptions over a websocket at the same path, speaking
graphql-transport-ws (the protocol of the ``graphql-ws`` client library; the older
subscriptions-transport-ws protocol is not offered). A websocket client authenticates
with ``Authorization: Bearer <token>`` on the upgrade request or in the
``connection_init`` payload (``{"Authorization": "Bearer <token>"}``).

Mount with ``app.include_router(graphql_router())`` in ``create_app``.
"""

from __future__ import annotations

from typing import Any

from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.unset import UNSET, UnsetType

from app.api.graphql.context import GraphQLContext, get_context
from app.api.graphql.schema import build_schema


class TwinGraphRouter(GraphQLRouter[GraphQLContext, None]):
    async def on_ws_connect(self, context: GraphQLContext) -> UnsetType | dict[str, object] | None:
        """A token in ``connection_init`` replaces the upgrade request's. A bad one is not
        refused here: each operation then reports it as an error with its code."""
        params: Any = context.connection_params
        if isinstance(params, dict):
            header = params.get("Authorization", params.get("authorization"))
            if header is not None:
                context.authenticate(header)
        unset: UnsetType = UNSET
        return unset


def graphql_router(
    *, path: str = "/graphql", max_depth: int = 10, max_cost: int = 200_000
) -> GraphQLRouter[GraphQLContext, None]:
    return TwinGraphRouter(
        build_schema(max_depth=max_depth, max_cost=max_cost),
        path=path,
        context_getter=get_context,
        graphql_ide="graphiql",
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        tags=["graphql"],
    )


__all__ = ["build_schema", "graphql_router"]
