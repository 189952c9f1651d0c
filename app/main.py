"""The ASGI application: ``create_app(settings)``; ``app`` exists only for uvicorn."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from app import __version__
from app.api import devices as devices_api
from app.api import (
    events,
    graph_store,
    graphs,
    health,
    problems,
    queries,
    revisions,
    sparql,
    telemetry,
)
from app.api import twins as twins_api
from app.api.graphql import graphql_router
from app.api.haystack import haystack_router
from app.lifespan import make_lifespan
from app.platform import Platform
from app.settings import Settings
from app.ui import explorer_router


def create_app(
    settings: Settings | None = None,
    *,
    platform: Platform | None = None,
    close_platform: bool = False,
) -> FastAPI:
    """Build the app. Pass ``platform`` to share an already-open one (tests, benchmarks,
    the CLI); ``close_platform`` hands its closing to the app's shutdown."""
    settings = settings or (platform.settings if platform else Settings())
    app = FastAPI(
        title="TwinGraph",
        version=__version__,
        description="Semantic graph digital twins: Brick/REC models, SPARQL, telemetry.",
        lifespan=make_lifespan(settings, platform, close_platform=close_platform),
    )
    problems.install(app)
    for module in (health, sparql, graph_store, graphs, queries, telemetry, events, revisions):
        app.include_router(module.router)
    app.include_router(twins_api.router)
    app.include_router(devices_api.router)
    app.include_router(graphql_router())
    app.include_router(haystack_router())
    app.include_router(explorer_router(vendor_dir=settings.ui_vendor_dir))

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def index() -> str:
        return _INDEX

    return app


_INDEX = """<!doctype html><html><head><meta charset="utf-8"><title>TwinGraph</title></head>
<body style="font-family:sans-serif;max-width:48em;margin:2em auto">
<h1>TwinGraph</h1>
<ul>
<li><a href="/explorer">Explorer</a>: the building tree with live point charts, and a
<a href="/explorer/sparql">SPARQL editor</a></li>
<li><a href="/docs">API reference (OpenAPI)</a></li>
<li><a href="/health">Health</a></li>
<li><a href="/graphs">Graphs</a> and <a href="/queries">named queries</a></li>
<li><a href="/graphql">GraphQL (GraphiQL)</a>: the building model joined with telemetry</li>
<li>SPARQL 1.1 endpoint: <code>/sparql</code>; Graph Store Protocol: <code>/rdf-graphs</code></li>
</ul></body></html>"""


def __getattr__(name: str) -> FastAPI:
    # `uvicorn app.main:app` - built on first access, never at import time.
    if name == "app":
        return create_app()
    raise AttributeError(name)
