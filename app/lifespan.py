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
        if app.state.platform.events is not None:
            # This process's share of the fan-out: SSE, subscriptions, twin services.
            await run_in_threadpool(app.state.platform.events.start)
        twins = None
        if app.state.platform.twins is not None and app.state.platform.events is not None:
            # Live twins: delivery to devices, command expiry, offline detection, MQTT channel.
            from app.twins.factory import start_runtime

            platform_ = app.state.platform
            twins = await run_in_threadpool(
                start_runtime, platform_.twins, platform_.events, platform_.settings
            )
        if owned:
            from app.telemetry.live import start_event_bridge, start_mqtt_ingest

            ingest = await run_in_threadpool(start_mqtt_ingest, app.state.platform)
            await run_in_threadpool(start_event_bridge, app.state.platform)
        try:
            yield
        finally:
            if twins is not None:
                await run_in_threadpool(twins.stop)
            if ingest is not None:
                await run_in_threadpool(ingest.stop)
            if owned or close_platform:
                await run_in_threadpool(app.state.platform.close)

    return lifespan
