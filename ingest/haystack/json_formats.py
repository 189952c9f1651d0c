"""Haystack JSON grids: the Haystack 3 encoding (``"m:"``, ``"n:72 °F"``, ``"r:id dis"``) and
Hayson, the Haystack 4 encoding (``{"_kind": "ref", "val": ..., "dis": ...}``).

Which one a file uses is decided once per file (see ``detect``): the two cannot be told
apart value by value, since a Hayson string may legitimately start with ``"s:"``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable
from typing import Any, Literal

from ingest.haystack.values import (
    MARKER,
    NA_VALUE,
    REMOVE,
    Bin,
    Coord,
    DateTime,
    Grid,
    HaystackParseError,
    HValue,
    Number,
    Record,
    Ref,
    Symbol,
    Uri,
    XStr,
)
from ingest.haystack.zinc import _DATETIME, parse_datetime, parse_time

JsonFlavour = Literal["json3", "hayson"]
_SPECIAL_NUMBERS = {"INF": math.inf, "-INF": -math.inf, "NaN": math.nan}


def _number(text: str) -> float:
    return _SPECIAL_NUMBERS[text] if text in _SPECIAL_NUMBERS else float(text)


def _datetime(text: str, tz: str | None = None) -> DateTime:
    m = _DATETIME.fullmatch(text.strip())
    if not m:
        raise HaystackParseError(f"bad date-time {text!r}")
    return parse_datetime(m.group(1), m.group(2), m.group(3), tz or m.group(4))


# -- Haystack 3 JSON ---------------------------------------------------------------------


def decode_json3(value: Any) -> HValue:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return Number(float(value))
    if value is None:
        return None
    if isinstance(value, list):
        return [decode_json3(v) for v in value]
    if isinstance(value, dict):
        if "cols" in value and "rows" in value:
            return _grid(value, decode_json3)
        return {k: decode_json3(v) for k, v in value.items()}
    if not isinstance(value, str):
        raise HaystackParseError(f"unexpected JSON value {value!r}")
    if len(value) < 2 or value[1] != ":":
        return value
    prefix, body = value[0], value[2:]
    match prefix:
        case "s":
            return body
        case "m":
            return MARKER
        case "-":
            return REMOVE
        case "z":
            return NA_VALUE
        case "n":
            num, _, unit = body.partition(" ")
            return Number(_number(num), unit or None)
        case "r":
            rid, _, dis = body.partition(" ")
            return Ref(rid, dis or None)
        case "c":
            lat, _, lng = body.partition(",")
            return Coord(float(lat), float(lng))
        case "t":
            return _datetime(body)
        case "d":
            return dt.date.fromisoformat(body)
        case "h":
            return parse_time(body)
        case "u":
            return Uri(body)
        case "y":
            return Symbol(body)
        case "b":
            return Bin(body)
        case "x":
            kind, _, data = body.partition(":")
            return XStr(kind, data)
    return value


# -- Hayson ------------------------------------------------------------------------------


def decode_hayson(value: Any) -> HValue:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return Number(float(value))
    if isinstance(value, list):
        return [decode_hayson(v) for v in value]
    if not isinstance(value, dict):
        raise HaystackParseError(f"unexpected JSON value {value!r}")
    kind = str(value.get("_kind", "dict")).lower()
    val = value.get("val")
    match kind:
        case "marker":
            return MARKER
        case "remove":
            return REMOVE
        case "na":
            return NA_VALUE
        case "number" | "num":
            num = _number(val) if isinstance(val, str) else float(math.nan if val is None else val)
            return Number(num, value.get("unit"))
        case "ref":
            return Ref(str(val), value.get("dis"))
        case "coord":
            return Coord(float(value["lat"]), float(value["lng"]))
        case "datetime":
            return _datetime(str(val), value.get("tz"))
        case "date":
            return dt.date.fromisoformat(str(val))
        case "time":
            return parse_time(str(val))
        case "uri":
            return Uri(str(val))
        case "symbol":
            return Symbol(str(val))
        case "bin":
            return Bin(str(value.get("mime", val)))
        case "xstr":
            return XStr(str(value.get("type")), str(val))
        case "grid":
            return _grid(value, decode_hayson)
        case "list":
            return [decode_hayson(v) for v in value.get("vals", [])]
        case "dict":
            return {k: decode_hayson(v) for k, v in value.items() if k != "_kind"}
    raise HaystackParseError(f"unknown Hayson kind {value.get('_kind')!r}")


# -- grids -------------------------------------------------------------------------------


def _grid(doc: dict[str, Any], decode: Callable[[Any], HValue]) -> Grid:
    meta: Record = {k: decode(v) for k, v in (doc.get("meta") or {}).items() if k != "_kind"}
    columns: list[str] = []
    column_meta: dict[str, Record] = {}
    for col in doc.get("cols") or []:
        name = str(col["name"])
        columns.append(name)
        extra = {k: decode(v) for k, v in col.items() if k not in ("name", "_kind")}
        if extra:
            column_meta[name] = extra
    rows: list[Record] = []
    for raw in doc.get("rows") or []:
        row = {k: decode(v) for k, v in raw.items() if k != "_kind"}
        rows.append({k: v for k, v in row.items() if v is not None})
    return Grid(meta=meta, columns=columns, rows=rows, column_meta=column_meta)


def _has_kind(value: Any) -> bool:
    if isinstance(value, dict):
        return "_kind" in value or any(_has_kind(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_kind(v) for v in value)
    return False


def detect(doc: Any) -> JsonFlavour:
    """Hayson when any value carries a ``_kind``; the Haystack 3 encoding otherwise."""
    if isinstance(doc, dict) and (
        "_kind" in doc or any(_has_kind(r) for r in (doc.get("rows") or [])[:50])
    ):
        return "hayson"
    return "json3"


def parse_json(text: str, flavour: JsonFlavour | None = None) -> Grid:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise HaystackParseError(exc.msg, line=exc.lineno, column=exc.colno) from exc
    if isinstance(doc, list):  # a bare list of records
        doc = {"cols": [], "rows": doc}
    if not isinstance(doc, dict) or "rows" not in doc:
        raise HaystackParseError("a Haystack JSON grid is an object with 'rows'")
    decode = decode_hayson if (flavour or detect(doc)) == "hayson" else decode_json3
    grid = _grid(doc, decode)
    if not grid.columns:
        seen: dict[str, None] = {}
        for row in grid.rows:
            seen.update(dict.fromkeys(row))
        grid.columns = list(seen)
    return grid
