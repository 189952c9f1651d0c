"""``/rdf-graphs``: the SPARQL 1.1 Graph Store HTTP Protocol, with validated writes."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.api.body import read_body
from app.api.deps import CallerDep, PlatformDep, check_scope
from app.errors import ForbiddenError, InvalidInputError
from app.graph.models import DEFAULT_GRAPH
from app.graph.rdf_io import format_from_media_type
from app.graph.sparql import GRAPH_FORMATS, negotiate
from app.security.tokens import Scope

router = APIRouter(tags=["graph store"])


def _target(request: Request) -> str | None:
    params = request.query_params
    if "graph" in params and "default" in params:
        raise InvalidInputError("Pass either ?graph=IRI or ?default, not both")
    if "graph" in params:
        graph = params["graph"]
        if not graph:
            raise InvalidInputError("?graph needs an IRI", code="bad_graph")
        return graph
    if "default" in params:
        return DEFAULT_GRAPH
    return None


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() in ("1", "true", "yes", "")


@router.api_route("/rdf-graphs", methods=["GET", "HEAD"])
def gsp_get(request: Request, platform: PlatformDep, caller: CallerDep) -> Response:
    check_scope(platform, caller, Scope.READ)
    graph = _target(request)
    if graph is None:
        raise InvalidInputError("Name a graph with ?graph=IRI or ?default", code="missing_graph")
    media = negotiate(request.headers.get("accept"), GRAPH_FORMATS, "text/turtle")
    body = platform.models.export(graph, GRAPH_FORMATS[media])
    if media == "text/plain":
        media = "application/n-triples"
    return Response(b"" if request.method == "HEAD" else body, media_type=media)


async def _write(
    request: Request, platform: PlatformDep, caller: CallerDep, mode: Literal["replace", "merge"]
) -> Response:
    principal = check_scope(platform, caller, Scope.WRITE)
    graph = _target(request)
    created_iri = None
    if graph is None:
        if mode == "replace":
            raise InvalidInputError("PUT needs ?graph=IRI", code="missing_graph")
        graph = created_iri = f"urn:twingraph:model:{uuid.uuid4()}"
    if graph == DEFAULT_GRAPH:
        raise ForbiddenError(
            "Models live in named graphs; write to ?graph=IRI instead of the default graph",
            code="default_graph_read_only",
        )
    validate = request.query_params.get("validate", "true").lower() not in ("0", "false", "no")
    if not validate and not principal.allows(Scope.ADMIN):
        raise ForbiddenError("Skipping validation needs the admin scope", code="insufficient_scope")
    fmt = format_from_media_type(request.headers.get("content-type"))
    data = await read_body(request, platform.settings.max_upload_bytes)
    existed = graph in await run_in_threadpool(platform.store.graph_names)
    result = await run_in_threadpool(
        lambda: platform.models.ingest(
            graph=graph,
            data=data,
            fmt=fmt,
            mode=mode,
            lenient=_flag(request, "lenient") if "lenient" in request.query_params else False,
            migrate_legacy=_flag(request, "migrate")
            if "migrate" in request.query_params
            else False,
            validate=validate,
            source=f"<{graph}>",
            author=principal.label,
        )
    )
    status = 201 if not existed else 200
    headers = {"Location": f"/rdf-graphs?graph={created_iri}"} if created_iri else None
    return JSONResponse(result.as_dict(), status_code=status, headers=headers)


@router.put("/rdf-graphs")
async def gsp_put(request: Request, platform: PlatformDep, caller: CallerDep) -> Response:
    return await _write(request, platform, caller, "replace")


@router.post("/rdf-graphs")
async def gsp_post(request: Request, platform: PlatformDep, caller: CallerDep) -> Response:
    return await _write(request, platform, caller, "merge")


@router.delete("/rdf-graphs")
def gsp_delete(request: Request, platform: PlatformDep, caller: CallerDep) -> Response:
    principal = check_scope(platform, caller, Scope.WRITE)
    graph = _target(request)
    if not graph:
        raise InvalidInputError("DELETE needs ?graph=IRI", code="missing_graph")
    platform.models.delete(graph, author=principal.label)
    return Response(status_code=204)
