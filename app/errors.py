"""The one error family of TwinGraph.

Services raise these; the API layer turns them into RFC 9457 problem+json (REST) or
``errors[]`` entries with ``extensions.code`` (GraphQL). Library errors are translated
into this family where they cross into our code, never shown raw.
"""

from __future__ import annotations

from typing import Any


class AppError(Exception):
    status: int = 500
    code: str = "internal_error"
    title: str = "Internal error"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        self.extra: dict[str, Any] = extra


class InvalidInputError(AppError):
    """The request itself is wrong: bad syntax, bad parameters, a model that breaks shapes."""

    status = 400
    code = "invalid_input"
    title = "Invalid input"


class ValidationFailedError(InvalidInputError):
    """A model did not conform to the shapes; ``extra['report']`` holds the report."""

    status = 422
    code = "validation_failed"
    title = "Model does not conform to its shapes"


class UnauthorizedError(AppError):
    status = 401
    code = "unauthorized"
    title = "Authentication required"


class ForbiddenError(UnauthorizedError):
    status = 403
    code = "forbidden"
    title = "Not allowed"


class NotFoundError(AppError):
    status = 404
    code = "not_found"
    title = "Not found"


class ConflictError(AppError):
    status = 409
    code = "conflict"
    title = "Conflict"


class PayloadTooLargeError(AppError):
    status = 413
    code = "payload_too_large"
    title = "Payload too large"


class UnsupportedMediaTypeError(AppError):
    status = 415
    code = "unsupported_media_type"
    title = "Unsupported media type"


class NotAcceptableError(AppError):
    status = 406
    code = "not_acceptable"
    title = "Not acceptable"


class QueryTimeoutError(AppError):
    status = 503
    code = "query_timeout"
    title = "Query exceeded its time limit"


class UnavailableError(AppError):
    status = 503
    code = "unavailable"
    title = "Service unavailable"
