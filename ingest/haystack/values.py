"""The Haystack value model every reader produces and the mapping consumes.

Strings, booleans, dates and times are plain Python values; the kinds Python has no type
for are small frozen dataclasses. Numbers are always floats so that ``23221`` (Zinc) and
``23221.0`` (JSON) read as the same value. A record is a ``dict`` of tag name to value; an
absent tag is simply not in the dict (Zinc's empty cell, JSON's missing key).
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import TypeAlias


@dataclass(frozen=True, slots=True)
class Marker:
    def __repr__(self) -> str:
        return "M"


@dataclass(frozen=True, slots=True)
class Remove:
    def __repr__(self) -> str:
        return "R"


@dataclass(frozen=True, slots=True)
class NA:
    def __repr__(self) -> str:
        return "NA"


MARKER = Marker()
REMOVE = Remove()
NA_VALUE = NA()


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    unit: str | None = None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Number):
            return NotImplemented
        both_nan = math.isnan(self.value) and math.isnan(other.value)
        return (both_nan or self.value == other.value) and self.unit == other.unit

    def __hash__(self) -> int:
        return hash((0.0 if math.isnan(self.value) else self.value, self.unit))


@dataclass(frozen=True, slots=True)
class Ref:
    id: str
    #: The display name shipped with the ref; not part of its identity.
    dis: str | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Uri:
    value: str


@dataclass(frozen=True, slots=True)
class Symbol:
    value: str


@dataclass(frozen=True, slots=True)
class Coord:
    lat: float
    lng: float


@dataclass(frozen=True, slots=True)
class XStr:
    type: str
    value: str


@dataclass(frozen=True, slots=True)
class Bin:
    mime: str


@dataclass(frozen=True, slots=True)
class DateTime:
    """A timestamp with its Haystack time-zone name (``New_York``, ``UTC``)."""

    value: dt.datetime
    tz: str | None = None


HValue: TypeAlias = (
    "Marker | Remove | NA | bool | str | Number | Ref | Uri | Symbol | Coord | XStr | Bin"
    " | DateTime | dt.date | dt.time | list[HValue] | dict[str, HValue] | Grid | None"
)
Record: TypeAlias = dict[str, HValue]


@dataclass(slots=True)
class Grid:
    meta: Record
    columns: list[str]
    rows: list[Record]
    column_meta: dict[str, Record] = field(default_factory=dict)


class HaystackParseError(ValueError):
    """A grid that does not parse; ``line`` / ``column`` are 1-based where known."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None):
        where = f" (line {line}, column {column})" if line is not None else ""
        super().__init__(message + where)
        self.line = line
        self.column = column


def ref_id(value: HValue) -> str | None:
    return value.id if isinstance(value, Ref) else None


def markers(record: Record) -> frozenset[str]:
    return frozenset(k for k, v in record.items() if isinstance(v, Marker))
