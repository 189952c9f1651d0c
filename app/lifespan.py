"""Open the platform when the app starts and close it when it stops: the only place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from app.platform import Platform, open_platform
from app.settings import Settings


def make_lifespan(
    settings: Settings, platform: Platform | None, *, close_platform: bool = False
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """``close_platform``: close a platform passed in when the app shuts down. The CLI needs
    this: uvicorn re-raises SIGTERM after shutdown, so code after ``uvicorn.run`` never runs.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = platform is None
        app.state.platform = platform or await run_in_threadpool(open_platform, settings)
        ingest = None
        if owned:
            from app.telemetry.live import start_mqtt_ingest

            ingest = await run_in_threadpool(start_mqtt_ingest, app.state.platform)
        try:
            yield
        finally:
            if ingest is not None:
                await run_in_threadpool(ingest.stop)
            if owned or close_platform:
                await run_in_threadpool(app.state.platform.close)

    return lifespan
