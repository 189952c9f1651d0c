"""Reading request bodies under the upload limit, without buffering more than it."""

from __future__ import annotations

from fastapi import Request

from app.errors import PayloadTooLargeError


async def read_body(request: Request, limit: int) -> bytes:
    """The body, or 413 as soon as it is known to exceed ``limit`` bytes (from the
    declared length, or while streaming), before a large upload is held in memory."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"The body is {declared} bytes; the limit is {limit}")
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"The body exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)
