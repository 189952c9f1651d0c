"""The typed per-request context resolvers receive: platform, caller, loaders, counters."""

from __future__ import annotations

from fastapi import Request
from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo

from app.api.deps import authenticate
from app.api.graphql.loaders import Loaders, RoundTrips
from app.errors import UnauthorizedError
from app.platform import Platform
from app.security.tokens import Principal


class GraphQLContext(BaseContext):
    def __init__(
        self,
        platform: Platform,
        principal: Principal | None,
        auth_error: UnauthorizedError | None = None,
    ) -> None:
        super().__init__()
        self.platform = platform
        self.principal = principal
        #: A malformed or unknown token: reported as a GraphQL error, not an HTTP one.
        self.auth_error = auth_error
        self.trips = RoundTrips()
        self.loaders = Loaders(platform, self.trips)


Info = StrawberryInfo[GraphQLContext, None]


async def get_context(request: Request) -> GraphQLContext:
    platform: Platform = request.app.state.platform
    try:
        principal = authenticate(request, platform)
    except UnauthorizedError as exc:
        return GraphQLContext(platform, None, exc)
    return GraphQLContext(platform, principal)
