"""``/queries``: the named SPARQL library in ``queries/``."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import PlatformDep, ReaderDep
from app.errors import NotFoundError
from app.graph.named_queries import bind_params, with_values

router = APIRouter(tags=["named queries"])


@router.get("/queries")
def list_queries(platform: PlatformDep, _: ReaderDep) -> dict[str, object]:
    return {
        "queries": [
            {
                "name": q.key,
                "title": q.title,
                "description": q.description,
                "params": [
                    {"name": p.name, "kind": p.kind, "required": p.required, "default": p.default}
                    for p in q.params
                ],
                "returns": q.returns,
            }
            for q in sorted(platform.queries.values(), key=lambda q: q.key)
        ]
    }


@router.get("/queries/{name:path}")
async def run_query(name: str, request: Request, platform: PlatformDep, _: ReaderDep) -> Response:
    query = platform.queries.get(name)
    if query is None:
        raise NotFoundError(
            f"No named query {name!r}; GET /queries lists them", code="query_not_found"
        )
    raw = {k: v for k, v in request.query_params.items() if k not in ("format",)}
    bindings = bind_params(query, raw)
    accept = request.headers.get("accept")
    if "format" in request.query_params:
        accept = request.query_params["format"]
    answer = await run_in_threadpool(
        platform.sparql.run, with_values(query, bindings), accept=accept
    )
    return Response(answer.body, media_type=answer.media_type)
