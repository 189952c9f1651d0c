"""Dependencies shared by the routers: the platform and the caller's identity."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from app.errors import ForbiddenError, UnauthorizedError
from app.platform import Platform
from app.security.tokens import ANONYMOUS_READER, Principal, Scope

# Dependencies are coroutines: FastAPI runs plain functions in its thread pool, a thread
# hop per dependency and request (three of them cost a small query most of its time).


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


async def authenticate(request: Request, platform: PlatformDep) -> Principal | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("Use 'Authorization: Bearer <token>'", code="bad_auth_header")
    known, principal = platform.tokens.cached(token.strip())
    if not known:  # the token store is read from disk: off the event loop
        principal = await run_in_threadpool(platform.tokens.verify, token.strip())
    if principal is None:
        raise UnauthorizedError("The token is unknown or revoked", code="invalid_token")
    return principal


def check_scope(platform: Platform, principal: Principal | None, scope: Scope) -> Principal:
    """The caller, if allowed ``scope``; for endpoints whose needed scope depends on input."""
    if principal is None:
        if scope is Scope.READ and platform.settings.anonymous_read:
            return ANONYMOUS_READER
        raise UnauthorizedError(
            f"This needs a token with the {scope.name.lower()} scope "
            "(create one with `twingraph token create`)",
            code="token_required",
        )
    if not principal.allows(scope):
        raise ForbiddenError(
            f"The token has the {principal.scope.name.lower()} scope; this needs "
            f"{scope.name.lower()}",
            code="insufficient_scope",
        )
    return principal


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    async def dependency(
        platform: PlatformDep,
        principal: Annotated[Principal | None, Depends(authenticate)],
    ) -> Principal:
        return check_scope(platform, principal, scope)

    return dependency


CallerDep = Annotated[Principal | None, Depends(authenticate)]


ReaderDep = Annotated[Principal, Depends(require(Scope.READ))]
WriterDep = Annotated[Principal, Depends(require(Scope.WRITE))]
AdminDep = Annotated[Principal, Depends(require(Scope.ADMIN))]
