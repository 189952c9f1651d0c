"""Open the platform when the app starts and close it when it stops: the only place."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial

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
        if app.state.platform.events is not None:
            # This process's share of the fan-out: SSE, subscriptions, twin services.
            await run_in_threadpool(app.state.platform.events.start)
        twins = None
        if app.state.platform.twins is not None and app.state.platform.events is not None:
            # Live twins: delivery to devices, command expiry, offline detection, MQTT channel,
            # run by the one process (of those sharing the database) that is twin leader.
            from app.twins.factory import start_runtime

            platform_ = app.state.platform
            twins = await run_in_threadpool(
                start_runtime, platform_.twins, platform_.events, platform_.settings
            )
        if owned or close_platform:
            # The app runs the live services of a platform it owns (closing it stops them);
            # the MQTT ingest, one session per deployment, only in the twin leader.
            from app.telemetry.live import start_event_bridge, start_mqtt_ingest

            platform_ = app.state.platform
            leader = platform_.twins.runtime if platform_.twins is not None else None
            await run_in_threadpool(partial(start_mqtt_ingest, platform_, leader=leader))
            await run_in_threadpool(start_event_bridge, platform_)
        try:
            yield
        finally:
            if twins is not None:
                await run_in_threadpool(twins.stop)
            if owned or close_platform:
                await run_in_threadpool(app.state.platform.close)

    return lifespan
