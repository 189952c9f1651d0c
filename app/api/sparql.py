"""``/sparql``: the SPARQL 1.1 Protocol (query and update operations)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from app.api.body import read_body
from app.api.deps import authenticate, check_scope
from app.errors import InvalidInputError, PayloadTooLargeError, UnsupportedMediaTypeError
from app.graph.sparql import FORMAT_ALIASES
from app.platform import Platform
from app.security.tokens import Principal, Scope

router = APIRouter(tags=["sparql"])


def _accept(request: Request, params: dict[str, list[str]]) -> str | None:
    accept = request.headers.get("accept")
    # SPARQLWrapper and browsers: honour ?format= / ?output= when Accept says nothing useful.
    for key in ("format", "output"):
        for value in params.get(key, []):
            if value.lower() in FORMAT_ALIASES and (not accept or accept.startswith("*/*")):
                return FORMAT_ALIASES[value.lower()]
    return accept


def _multi(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in pairs:
        out.setdefault(k, []).append(v)
    return out


async def _run_query(
    request: Request,
    platform: Platform,
    caller: Principal | None,
    query: str,
    params: dict[str, list[str]],
) -> Response:
    check_scope(platform, caller, Scope.READ)
    store, revision = None, None
    as_of = params.get("asOf") or params.get("as-of")
    if as_of:
        from app.api.revisions import history_of, parse_as_of

        when = parse_as_of(as_of[0])
        store, revision = await run_in_threadpool(history_of(platform).store_at, when)
    answer = await platform.sparql.run_async(
        query,
        accept=_accept(request, params),
        default_graphs=params.get("default-graph-uri", []),
        named_graphs=params.get("named-graph-uri", []),
        store=store,
    )
    headers = {"X-TwinGraph-Query-Seconds": f"{answer.seconds:.4f}"}
    if revision is not None:
        headers["X-TwinGraph-Revision"] = str(revision)
    if answer.rewritten_paths:
        headers["X-TwinGraph-Rewritten-Paths"] = str(answer.rewritten_paths)
    return Response(answer.body, media_type=answer.media_type, headers=headers)


async def _run_update(platform: Platform, caller: Principal | None, update: str) -> Response:
    principal = check_scope(platform, caller, Scope.WRITE)
    if len(update.encode()) > platform.settings.max_upload_bytes:
        raise PayloadTooLargeError("The update is larger than the upload limit")
    result = await run_in_threadpool(
        platform.models.apply_update,
        update,
        allow_managed=principal.allows(Scope.ADMIN),
        author=principal.label,
    )
    from fastapi.responses import JSONResponse

    return JSONResponse(
        {
            "changed": {
                g or "(default graph)": {"added": a, "removed": r}
                for g, (a, r) in result.changed.items()
            },
            "validation": result.report.as_dict() if result.report else None,
        }
    )


async def _platform_and_caller(request: Request) -> tuple[Platform, Principal | None]:
    """What ``PlatformDep`` and ``CallerDep`` give, without FastAPI's dependency solving:
    on this endpoint, whose small queries answer in about a millisecond, resolving two
    dependencies per request cost a tenth of a millisecond of the event loop's time."""
    platform: Platform = request.app.state.platform
    return platform, await authenticate(request, platform)


@router.get("/sparql")
async def sparql_get(request: Request) -> Response:
    platform, caller = await _platform_and_caller(request)
    params = _multi(list(request.query_params.multi_items()))
    if "update" in params:
        raise InvalidInputError("SPARQL Update must be sent with POST", code="update_needs_post")
    if not params.get("query"):
        raise InvalidInputError("Pass the query in the 'query' parameter", code="missing_query")
    return await _run_query(request, platform, caller, params["query"][0], params)


@router.post("/sparql")
async def sparql_post(request: Request) -> Response:
    platform, caller = await _platform_and_caller(request)
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    params = _multi(list(request.query_params.multi_items()))
    text = _decode(await read_body(request, platform.settings.max_upload_bytes))
    if media == "application/sparql-query":
        return await _run_query(request, platform, caller, text, params)
    if media == "application/sparql-update":
        return await _run_update(platform, caller, text)
    if media == "application/x-www-form-urlencoded":
        params.update(_multi(parse_qsl(text, keep_blank_values=True)))
        if params.get("update"):
            return await _run_update(platform, caller, params["update"][0])
        if params.get("query"):
            return await _run_query(request, platform, caller, params["query"][0], params)
        raise InvalidInputError(
            "The form needs a 'query' or an 'update' field", code="missing_query"
        )
    raise UnsupportedMediaTypeError(
        f"POST /sparql takes application/sparql-query, application/sparql-update or a form, "
        f"not {media or '(none)'!r}"
    )


def _decode(body: bytes) -> str:
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"The body is not UTF-8 (byte {exc.start})") from exc
