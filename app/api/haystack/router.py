"""``/haystack/{op}``: HTTP, authentication and error grids around the Haystack ops.

Every answer is a grid in the negotiated format, errors included: an error grid (meta
``err``, ``dis``, ``errTrace``) with the HTTP status of the error (400 bad request or
filter, 401 no or bad credentials, 403 scope or failed login, 404 unknown op or id, 405
GET on a POST-only op, 406/415 formats, 503 telemetry unavailable). Unexpected errors are
logged with a request id and answered 500 without details.
"""

from __future__ import annotations

import logging
import threading
import uuid

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from app.api.deps import check_scope
from app.api.haystack import codec
from app.api.haystack.auth import Challenge, HaystackAuth, LoggedIn, parse_authorization
from app.api.haystack.ops import HaystackService
from app.errors import AppError, InvalidInputError, NotFoundError, PayloadTooLargeError
from app.platform import Platform
from app.security.haystack_users import HaystackUsers, users_path
from app.security.tokens import Principal
from ingest.haystack.values import Grid, HaystackParseError

log = logging.getLogger("twingraph.haystack")
PREFIX = "/haystack"


class _MethodNotAllowedError(AppError):
    status = 405
    code = "method_not_allowed"
    title = "Method not allowed"


class _Services:
    """One HaystackService per platform, made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_platform: dict[int, HaystackService] = {}

    def get(self, platform: Platform) -> HaystackService:
        key = id(platform)
        service = self._by_platform.get(key)
        if service is None:
            with self._lock:
                service = self._by_platform.get(key)
                if service is None:
                    users = HaystackUsers(users_path(platform.settings.data_dir))
                    service = HaystackService(platform, HaystackAuth(users, platform.tokens))
                    self._by_platform[key] = service
        return service


def _error(exc: Exception, fmt: codec.Format, path: str) -> Response:
    headers: dict[str, str] = {}
    if isinstance(exc, AppError):
        status, dis, trace = exc.status, exc.detail, f"{exc.code}: {exc.detail}"
        if status == 401:
            headers["WWW-Authenticate"] = "SCRAM hash=SHA-256"
    elif isinstance(exc, HaystackParseError):
        status, dis, trace = 400, f"Bad request grid: {exc}", f"haystack_parse_error: {exc}"
    else:
        request_id = uuid.uuid4().hex[:12]
        log.exception(
            "unhandled Haystack error on %s, request id %s", path, request_id, exc_info=exc
        )
        status = 500
        dis = f"An unexpected error occurred; it was logged with request id {request_id}."
        trace = f"internal_error: request id {request_id}"
    return codec.respond(codec.error_grid(dis, trace), fmt, status=status, headers=headers)


def haystack_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX, tags=["haystack"])
    services = _Services()

    @router.api_route("/{op}", methods=["GET", "POST"])
    async def haystack_op(op: str, request: Request) -> Response:
        """A Haystack op (about, ops, formats, read, nav, hisRead, hisWrite, watchSub,
        watchPoll, watchUnsub, close) in Zinc or Haystack JSON; SCRAM or bearer auth."""
        try:
            fmt = codec.negotiate(request.headers.get("accept"))
        except AppError as exc:
            return _error(exc, "zinc", request.url.path)
        platform: Platform = request.app.state.platform
        service = services.get(platform)
        extra_headers: dict[str, str] = {}
        try:
            principal: Principal | None = None
            header = request.headers.get("authorization")
            if header:
                scheme, params, raw = parse_authorization(header)
                if scheme == "hello":
                    challenge = await run_in_threadpool(service.auth.hello, params)
                    return _challenge(challenge, fmt)
                if scheme == "scram":
                    step = await run_in_threadpool(service.auth.scram, params)
                    if isinstance(step, Challenge):
                        return _challenge(step, fmt)
                    assert isinstance(step, LoggedIn)
                    principal = step.principal
                    extra_headers["Authentication-Info"] = step.header
                elif scheme == "bearer":
                    principal = await run_in_threadpool(service.auth.bearer, params, raw)
                else:
                    raise InvalidInputError(
                        f"Unknown authorization scheme {scheme!r}: use HELLO/SCRAM or BEARER",
                        code="bad_auth_header",
                    )
            spec = service.ops.get(op)
            if spec is None:
                raise NotFoundError(f"Unknown Haystack op {op!r}", code="haystack_unknown_op")
            if spec.post_only and request.method != "POST":
                raise _MethodNotAllowedError(f"{op} changes state: use POST")
            if spec.scope is not None:
                principal = check_scope(platform, principal, spec.scope)
            grid = await _request_grid(request, platform.settings.max_upload_bytes)
            result = await run_in_threadpool(spec.run, grid, principal)
            return codec.respond(result, fmt, headers=extra_headers)
        except Exception as exc:  # every failure is an error grid
            response = _error(exc, fmt, request.url.path)
            response.headers.update(extra_headers)
            return response

    return router


def _challenge(challenge: Challenge, fmt: codec.Format) -> Response:
    grid = codec.error_grid("Authentication in progress", "auth_challenge")
    return codec.respond(grid, fmt, status=401, headers={"WWW-Authenticate": challenge.header})


async def _request_grid(request: Request, limit: int) -> Grid:
    if request.method == "GET":
        return codec.decode_query(request.query_params.multi_items())
    body = await request.body()
    if len(body) > limit:
        raise PayloadTooLargeError(f"The request grid is larger than {limit} bytes")
    return await run_in_threadpool(codec.decode_body, body, request.headers.get("content-type"))
