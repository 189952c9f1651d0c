"""Readings from CSV, in the two shapes trend exports come in.

- **long**: columns ``point``, ``time``, ``value`` (any order, any extra columns ignored);
- **wide**: one time column (``time``, ``timestamp``, ``date``, ``datetime`` or the first
  column) and one column per point, headed by whatever names the point: its time-series
  UUID or id, its IRI, or its ``rdfs:label`` (the open-fdd trends are headed by label).

Columns that name no known point are reported, never dropped silently; the caller decides
whether that fails the import. Times without a zone are read in ``default_tz``. Empty
cells are gaps, not readings.
"""

from __future__ import annotations

import csv
import io
import math
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo

from app.domain.telemetry import Reading, Value
from app.errors import InvalidInputError

TIME_COLUMNS = ("time", "timestamp", "datetime", "date", "ts")


@dataclass
class CsvReadings:
    readings: list[Reading] = field(default_factory=list)
    columns: dict[str, uuid.UUID] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)
    rows: int = 0
    gaps: int = 0
    layout: str = "wide"


def parse_csv(
    lines: Iterable[str],
    *,
    resolve: Callable[[str], uuid.UUID | None],
    default_tz: tzinfo = UTC,
    on_row: Callable[[int], None] | None = None,
) -> CsvReadings:
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InvalidInputError("The CSV is empty", code="csv_empty") from None
    lower = [h.lower() for h in header]
    out = CsvReadings()
    if {"point", "time", "value"} <= set(lower):
        out.layout = "long"
        ip, it, iv = lower.index("point"), lower.index("time"), lower.index("value")
        unknown: set[str] = set()
        for n, row in enumerate(reader, start=2):
            if not row:
                continue
            out.rows += 1
            key = row[ip].strip()
            point = out.columns.get(key) or resolve(key)
            if point is None:
                unknown.add(key)
                continue
            out.columns[key] = point
            value = _value(row[iv], n)
            if isinstance(value, _Gap):
                out.gaps += 1
                continue
            out.readings.append(Reading(point, _time(row[it], n, default_tz), value))
            if on_row:
                on_row(n)
        out.unmatched = sorted(unknown)
        return out
    it = next((lower.index(c) for c in TIME_COLUMNS if c in lower), 0)
    targets: list[tuple[int, uuid.UUID]] = []
    for i, name in enumerate(header):
        if i == it:
            continue
        point = resolve(name)
        if point is None:
            out.unmatched.append(name)
        else:
            out.columns[name] = point
            targets.append((i, point))
    for n, row in enumerate(reader, start=2):
        if not row:
            continue
        out.rows += 1
        when = _time(row[it], n, default_tz)
        for i, point in targets:
            value = _value(row[i] if i < len(row) else "", n)
            if isinstance(value, _Gap):
                out.gaps += 1
                continue
            out.readings.append(Reading(point, when, value))
        if on_row:
            on_row(n)
    return out


def parse_csv_bytes(
    data: bytes, *, resolve: Callable[[str], uuid.UUID | None], default_tz: tzinfo = UTC
) -> CsvReadings:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidInputError(f"The CSV is not UTF-8 (byte {exc.start})") from exc
    return parse_csv(io.StringIO(text), resolve=resolve, default_tz=default_tz)


class _Gap:
    pass


_GAP = _Gap()


def _value(cell: str, line: int) -> Value | _Gap:
    text = cell.strip()
    if not text:
        return _GAP
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        number = float(text)
    except ValueError:
        return text
    if not math.isfinite(number):
        raise InvalidInputError(
            f"line {line}: {text!r} is not a finite number", code="bad_value", line=line
        )
    return number


def _time(cell: str, line: int, default_tz: tzinfo) -> datetime:
    text = cell.strip()
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"line {line}: {text!r} is not an ISO 8601 / RFC 3339 time",
            code="bad_time",
            line=line,
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=default_tz)
