"""Grids out: Zinc, Hayson (Haystack 4 JSON) and the Haystack 3 JSON encoding.

The readers in this package read what these write back to the same values (a test checks
the round trip). Date-times always carry a zone name: the one they came with, else the
name of their IANA zone, else they are written in UTC.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ingest.haystack import timezones
from ingest.haystack.values import (
    NA,
    Bin,
    Coord,
    DateTime,
    Grid,
    HValue,
    Marker,
    Number,
    Record,
    Ref,
    Remove,
    Symbol,
    Uri,
    XStr,
)

VERSION = "3.0"


def make_grid(
    rows: Iterable[Record],
    meta: Record | None = None,
    *,
    first: tuple[str, ...] = ("id", "dis"),
    column_meta: dict[str, Record] | None = None,
    columns: list[str] | None = None,
) -> Grid:
    """A grid whose columns are every tag of ``rows``: ``first`` ones first, then sorted."""
    rows = list(rows)
    if columns is None:
        seen: set[str] = set()
        for r in rows:
            seen.update(r)
        columns = [c for c in first if c in seen] + sorted(seen - set(first))
    return Grid(
        meta={"ver": VERSION, **(meta or {})},
        columns=columns,
        rows=rows,
        column_meta=column_meta or {},
    )


# -- scalars -----------------------------------------------------------------------------


def _number_text(value: float) -> str:
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "INF" if value > 0 else "-INF"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _datetime(value: DateTime) -> tuple[str, str]:
    """ISO text with offset, and the zone name."""
    stamp, name = value.value, value.tz
    if name is None or timezones.zone(name) is None:
        name = timezones.name_of(stamp)
        if name == "UTC":
            stamp = stamp.astimezone(dt.UTC)
    text = stamp.isoformat()
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text, name


def _escape(text: str, quote: str) -> str:
    out: list[str] = []
    for c in text:
        if c == quote or c == "\\":
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return "".join(out)


def zinc_scalar(value: HValue) -> str:
    """One value in Zinc; ``None`` is ``N``."""
    if value is None:
        return "N"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, Marker):
        return "M"
    if isinstance(value, Remove):
        return "R"
    if isinstance(value, NA):
        return "NA"
    if isinstance(value, str):
        return '"' + _escape(value, '"') + '"'
    if isinstance(value, Number):
        text = _number_text(value.value)
        return text + (value.unit or "") if math.isfinite(value.value) else text
    if isinstance(value, Ref):
        return f"@{value.id}" + (f' "{_escape(value.dis, chr(34))}"' if value.dis else "")
    if isinstance(value, DateTime):
        text, name = _datetime(value)
        return f"{text} {name}"
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, dt.time):
        return value.isoformat()
    if isinstance(value, Uri):
        return "`" + _escape(value.value, "`") + "`"
    if isinstance(value, Symbol):
        return "^" + value.value
    if isinstance(value, Coord):
        return f"C({value.lat},{value.lng})"
    if isinstance(value, XStr):
        return f'{value.type}("{_escape(value.value, chr(34))}")'
    if isinstance(value, Bin):
        return f'Bin("{_escape(value.mime, chr(34))}")'
    if isinstance(value, list):
        return "[" + ",".join(zinc_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + _zinc_tags(value, " ") + "}"
    if isinstance(value, Grid):
        return "<<\n" + to_zinc(value) + ">>"
    raise TypeError(f"cannot encode {value!r} in Zinc")


def _zinc_tags(tags: Mapping[str, HValue], sep: str) -> str:
    parts = []
    for name, val in tags.items():
        if val is None:
            continue
        parts.append(name if isinstance(val, Marker) else f"{name}:{zinc_scalar(val)}")
    return sep.join(parts)


def to_zinc(grid: Grid) -> str:
    meta = {k: v for k, v in grid.meta.items() if k != "ver"}
    head = f'ver:"{grid.meta.get("ver", VERSION)}"'
    if meta:
        head += " " + _zinc_tags(meta, " ")
    columns = grid.columns or ["empty"]
    cols = []
    for c in columns:
        cmeta = grid.column_meta.get(c)
        cols.append(c + (" " + _zinc_tags(cmeta, " ") if cmeta else ""))
    lines = [head, ",".join(cols)]
    for row in grid.rows:
        cells = []
        for c in columns:
            val = row.get(c)
            cells.append("" if val is None else zinc_scalar(val))
        lines.append(",".join(cells))
    return "\n".join(lines) + "\n"


# -- Hayson (Haystack 4 JSON) ----------------------------------------------------------


def hayson_value(value: HValue) -> Any:
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, Number):
        if not math.isfinite(value.value):
            out: dict[str, Any] = {"_kind": "number", "val": _number_text(value.value)}
        elif value.unit is None:
            return value.value
        else:
            out = {"_kind": "number", "val": value.value}
        if value.unit:
            out["unit"] = value.unit
        return out
    if isinstance(value, Marker):
        return {"_kind": "marker"}
    if isinstance(value, Remove):
        return {"_kind": "remove"}
    if isinstance(value, NA):
        return {"_kind": "na"}
    if isinstance(value, Ref):
        ref: dict[str, Any] = {"_kind": "ref", "val": value.id}
        if value.dis:
            ref["dis"] = value.dis
        return ref
    if isinstance(value, DateTime):
        text, name = _datetime(value)
        return {"_kind": "dateTime", "val": text, "tz": name}
    if isinstance(value, dt.date):
        return {"_kind": "date", "val": value.isoformat()}
    if isinstance(value, dt.time):
        return {"_kind": "time", "val": value.isoformat()}
    if isinstance(value, Uri):
        return {"_kind": "uri", "val": value.value}
    if isinstance(value, Symbol):
        return {"_kind": "symbol", "val": value.value}
    if isinstance(value, Coord):
        return {"_kind": "coord", "lat": value.lat, "lng": value.lng}
    if isinstance(value, XStr):
        return {"_kind": "xstr", "type": value.type, "val": value.value}
    if isinstance(value, Bin):
        return {"_kind": "bin", "mime": value.mime}
    if isinstance(value, list):
        return [hayson_value(v) for v in value]
    if isinstance(value, dict):
        return {k: hayson_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, Grid):
        return hayson_grid(value)
    raise TypeError(f"cannot encode {value!r} in Hayson")


def hayson_grid(grid: Grid) -> dict[str, Any]:
    cols: list[dict[str, Any]] = []
    for c in grid.columns or ["empty"]:
        col: dict[str, Any] = {"name": c}
        if grid.column_meta.get(c):
            col["meta"] = hayson_value(grid.column_meta[c])
        cols.append(col)
    return {
        "_kind": "grid",
        "meta": {"ver": VERSION, **hayson_value(dict(grid.meta))},
        "cols": cols,
        "rows": [hayson_value(r) for r in grid.rows],
    }


def to_hayson(grid: Grid) -> str:
    return json.dumps(hayson_grid(grid), ensure_ascii=False, separators=(",", ":"))


# -- Haystack 3 JSON -------------------------------------------------------------------


def json3_value(value: HValue) -> Any:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        return "s:" + value if len(value) >= 2 and value[1] == ":" else value
    if isinstance(value, Number):
        text = _number_text(value.value)
        unit = f" {value.unit}" if value.unit and math.isfinite(value.value) else ""
        return f"n:{text}{unit}"
    if isinstance(value, Marker):
        return "m:"
    if isinstance(value, Remove):
        return "-:"
    if isinstance(value, NA):
        return "z:"
    if isinstance(value, Ref):
        return f"r:{value.id}" + (f" {value.dis}" if value.dis else "")
    if isinstance(value, DateTime):
        text, name = _datetime(value)
        return f"t:{text} {name}"
    if isinstance(value, dt.date):
        return "d:" + value.isoformat()
    if isinstance(value, dt.time):
        return "h:" + value.isoformat()
    if isinstance(value, Uri):
        return "u:" + value.value
    if isinstance(value, Symbol):
        return "y:" + value.value
    if isinstance(value, Coord):
        return f"c:{value.lat},{value.lng}"
    if isinstance(value, XStr):
        return f"x:{value.type}:{value.value}"
    if isinstance(value, Bin):
        return "b:" + value.mime
    if isinstance(value, list):
        return [json3_value(v) for v in value]
    if isinstance(value, dict):
        return {k: json3_value(v) for k, v in value.items() if v is not None}
    if isinstance(value, Grid):
        return json3_grid(value)
    raise TypeError(f"cannot encode {value!r} in Haystack 3 JSON")


def json3_grid(grid: Grid) -> dict[str, Any]:
    return {
        "meta": {"ver": VERSION, **json3_value(dict(grid.meta))},
        "cols": [
            {"name": c, **json3_value(grid.column_meta.get(c, {}))}
            for c in grid.columns or ["empty"]
        ],
        "rows": [json3_value(r) for r in grid.rows],
    }


def to_json3(grid: Grid) -> str:
    return json.dumps(json3_grid(grid), ensure_ascii=False, separators=(",", ":"))
