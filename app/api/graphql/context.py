"""The typed per-request context resolvers receive: platform, caller, loaders, counters.

Over HTTP a context lives for one request. Over a websocket (subscriptions) one context
serves the whole connection: the caller is known from the upgrade request's
``Authorization`` header or from the ``connection_init`` payload, and each operation and each subscription event gets fresh
loaders and counters (``refresh``) so it never answers from an earlier one's cache.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from strawberry.fastapi import BaseContext
from strawberry.types import Info as StrawberryInfo

from app.api.graphql.loaders import Loaders, RoundTrips
from app.errors import InvalidInputError, UnauthorizedError, UnavailableError
from app.platform import Platform
from app.security.tokens import Principal


def identify(platform: Platform, header: object) -> Principal | None:
    """The caller an ``Authorization`` value names (None when there is none); the same
    rules as the REST API's bearer tokens."""
    if header is None or header == "":
        return None
    if not isinstance(header, str):
        raise UnauthorizedError("Authorization must be 'Bearer <token>'", code="bad_auth_header")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("Use 'Authorization: Bearer <token>'", code="bad_auth_header")
    principal = platform.tokens.verify(token.strip())
    if principal is None:
        raise UnauthorizedError("The token is unknown or revoked", code="invalid_token")
    return principal


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
        #: Serves several operations (a websocket connection), see ``refresh``.
        self.long_lived = False
        self.trips = RoundTrips()
        self.loaders = Loaders(platform, self.trips)
        self._views: dict[datetime, asyncio.Future[Loaders]] = {}

    def authenticate(self, header: object) -> None:
        """Take the caller from an ``Authorization`` value (websocket ``connection_init``)."""
        try:
            self.principal, self.auth_error = identify(self.platform, header), None
        except UnauthorizedError as exc:
            self.principal, self.auth_error = None, exc

    def refresh(self) -> Loaders:
        """New loaders and counters (one subscription event); returns the loaders."""
        self.trips = RoundTrips()
        self.loaders = Loaders(self.platform, self.trips)
        self._views.clear()
        return self.loaders

    async def loaders_at(self, when: datetime | None) -> Loaders:
        """Loaders reading the model as of ``when`` (the live loaders for None); one view
        per distinct moment per request."""
        if when is None:
            return self.loaders
        if when.tzinfo is None:
            raise InvalidInputError("asOf needs a time zone offset", code="bad_time")
        found = self._views.get(when)
        if found is None:
            found = self._views[when] = asyncio.ensure_future(self._view(when))
        return await asyncio.shield(found)

    async def _view(self, when: datetime) -> Loaders:
        history = self.platform.history
        if history is None:
            raise UnavailableError(
                "Time travel needs the database (revisions are kept there)", code="no_history"
            )
        store, _revision = await run_in_threadpool(history.store_at, when)
        return Loaders(self.platform, self.trips, store=store, as_of=when)


Info = StrawberryInfo[GraphQLContext, None]


async def get_context(connection: HTTPConnection) -> GraphQLContext:
    """HTTP requests and websocket upgrades alike: the caller from ``Authorization``."""
    platform: Platform = connection.app.state.platform
    context = GraphQLContext(platform, None)
    context.authenticate(connection.headers.get("authorization"))
    context.long_lived = connection.scope["type"] == "websocket"
    return context
