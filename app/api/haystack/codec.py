"""Request grids in, response grids out: Zinc and Haystack JSON, chosen by media type.

- Responses: ``Accept`` picks Zinc (``text/zinc``, ``text/plain``, ``*/*``, or no header),
  Hayson (``application/json``) or the Haystack 3 JSON encoding (``application/json;v=3``);
  nothing acceptable is 406.
- POST bodies: ``Content-Type`` text/zinc (or text/plain) or application/json (Hayson or
  Haystack 3 JSON, told apart by content); an empty body is an empty grid; others are 415.
- GET: the query parameters are one request row. Values are Zinc scalars (``id=@p1``,
  ``limit=10``); ``filter``, ``range`` and the other text arguments may also be given
  unquoted (``filter=site and area > 100``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from fastapi.responses import Response

from app.errors import NotAcceptableError, UnsupportedMediaTypeError
from ingest.haystack.json_formats import parse_json
from ingest.haystack.values import MARKER, Grid, HaystackParseError, HValue, Record
from ingest.haystack.writers import make_grid, to_hayson, to_json3, to_zinc
from ingest.haystack.zinc import parse_scalar, parse_zinc

Format = Literal["zinc", "hayson", "json3"]
MEDIA: dict[Format, str] = {
    "zinc": "text/zinc; charset=utf-8",
    "hayson": "application/json",
    "json3": "application/json; v=3",
}
_TEXT_ARGS = frozenset({"filter", "range", "watchDis", "watchId", "navId", "rollup", "interval"})


def negotiate(accept: str | None) -> Format:
    if not accept or not accept.strip():
        return "zinc"
    best: tuple[float, int, Format] | None = None
    for order, part in enumerate(accept.split(",")):
        fields = [f.strip() for f in part.split(";")]
        mime = fields[0].lower()
        params = dict(
            (k.strip().lower(), v.strip()) for k, _, v in (f.partition("=") for f in fields[1:])
        )
        try:
            q = float(params.get("q", "1"))
        except ValueError:
            q = 1.0
        fmt: Format | None = None
        if mime in ("text/zinc", "text/plain", "text/*", "*/*"):
            fmt = "zinc"
        elif mime in ("application/json", "application/*"):
            fmt = "json3" if params.get("v") == "3" else "hayson"
        if fmt is not None and q > 0 and (best is None or (q, -order) > (best[0], -best[1])):
            best = (q, order, fmt)
    if best is None:
        raise NotAcceptableError(
            f"Cannot answer in {accept!r}: use text/zinc or application/json",
            code="haystack_not_acceptable",
        )
    return best[2]


def encode(grid: Grid, fmt: Format) -> bytes:
    match fmt:
        case "zinc":
            return to_zinc(grid).encode()
        case "hayson":
            return to_hayson(grid).encode()
        case "json3":
            return to_json3(grid).encode()


def respond(
    grid: Grid, fmt: Format, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(encode(grid, fmt), status_code=status, media_type=MEDIA[fmt], headers=headers)


def error_grid(dis: str, trace: str) -> Grid:
    return make_grid([], {"err": MARKER, "dis": dis, "errTrace": trace}, columns=["empty"])


def _flatten_column_meta(grid: Grid) -> Grid:
    """Hayson nests column meta under ``meta``; the reader keeps it as a tag of that name."""
    for name, meta in list(grid.column_meta.items()):
        nested = meta.get("meta")
        if isinstance(nested, dict) and set(meta) == {"meta"}:
            grid.column_meta[name] = nested
    return grid


def decode_body(body: bytes, content_type: str | None) -> Grid:
    if not body.strip():
        return make_grid([])
    mime = (content_type or "text/zinc").split(";")[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HaystackParseError(f"the request body is not UTF-8 ({exc.reason})") from None
    if mime in ("text/zinc", "text/plain"):
        return parse_zinc(text)
    if mime == "application/json":
        return _flatten_column_meta(parse_json(text))
    raise UnsupportedMediaTypeError(
        f"Cannot read a {mime!r} request: send text/zinc or application/json",
        code="haystack_unsupported_media_type",
    )


def _arg(name: str, raw: str) -> HValue:
    text = raw.strip()
    if name in _TEXT_ARGS and not text.startswith('"'):
        return text
    try:
        return parse_scalar(text)
    except (HaystackParseError, ValueError):
        return text


def decode_query(params: Iterable[tuple[str, str]]) -> Grid:
    row: Record = {}
    for name, raw in params:
        row[name] = _arg(name, raw)
    return make_grid([row] if row else [])
