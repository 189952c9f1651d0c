"""Long-lived streams end when their caller's token is revoked.

A token is checked when a request starts; an SSE stream or a GraphQL subscription then
lives for hours. A :class:`TokenWatch` checks it again every ``every_s`` seconds (when the
stream wakes for an item or a keep-alive); once the token is revoked the stream ends with
``UnauthorizedError`` (code ``token_revoked``). SSE streams call it from their keep-alive
loop; ``while_authorised`` wraps a GraphQL subscription's source.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from app.errors import UnauthorizedError
from app.security.tokens import CACHE_SECONDS, Principal, TokenStore

T = TypeVar("T")


class TokenWatch:
    def __init__(
        self, tokens: TokenStore, principal: Principal | None, *, every_s: float = CACHE_SECONDS
    ) -> None:
        self._tokens = tokens
        self._principal = principal
        self.every_s = every_s
        self._checked = asyncio.get_running_loop().time()  # the request's own check

    async def check(self) -> None:
        """Raise ``UnauthorizedError`` if the token was revoked (checked when due)."""
        principal = self._principal
        if principal is None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._checked < self.every_s:
            return
        self._checked = now
        if not await run_in_threadpool(self._tokens.still_valid, principal):
            raise UnauthorizedError(
                "The token this stream was opened with has been revoked", code="token_revoked"
            )


async def while_authorised(
    source: AsyncIterator[T], watch: TokenWatch
) -> AsyncGenerator[T, None]:
    """``source``'s items while the watched token is valid."""
    pending: asyncio.Future[T] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(anext(source))
            done, _ = await asyncio.wait({pending}, timeout=watch.every_s)
            await watch.check()
            if done:
                try:
                    item = pending.result()
                except StopAsyncIteration:
                    pending = None
                    return
                pending = None
                yield item
    finally:
        if pending is not None:
            pending.cancel()
            # Let the cancellation land, so that ``source`` can be closed right after.
            await asyncio.wait({pending})
