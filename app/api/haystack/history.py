"""hisRead ranges, rollups and the conversion between readings and Haystack values.

Ranges (docHaystack/Ops#hisRead), interpreted in the point's time zone: ``today``,
``yesterday``, ``<date>`` (that day), ``<date>,<date>`` (first day's start to the end of
the second), ``<dateTime>`` (from then to now) and ``<dateTime>,<dateTime>`` ([start, end)).

Rollups: ``interval`` (a duration such as ``15min``, ``1h``, ``1day``; a Number or a Str)
with ``rollup`` (``avg``, ``min``, ``max``, ``sum``, ``count``, ``first``, ``last``) ask
the telemetry store for one value per bucket; without ``rollup`` a totalized point
(``hisTotalized``) sums, a Bool/Str point takes the last value, anything else averages.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import cast

from app.domain.telemetry import Value
from app.errors import InvalidInputError
from app.telemetry.readings import AGGS, Agg
from ingest.haystack import timezones
from ingest.haystack.values import (
    NA,
    NA_VALUE,
    DateTime,
    HValue,
    Marker,
    Number,
    Record,
)
from ingest.haystack.zinc import _DATETIME, parse_datetime

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*")
_UNITS: dict[str, dt.timedelta] = {
    "ms": dt.timedelta(milliseconds=1),
    "s": dt.timedelta(seconds=1),
    "sec": dt.timedelta(seconds=1),
    "min": dt.timedelta(minutes=1),
    "mins": dt.timedelta(minutes=1),
    "h": dt.timedelta(hours=1),
    "hr": dt.timedelta(hours=1),
    "hour": dt.timedelta(hours=1),
    "day": dt.timedelta(days=1),
    "days": dt.timedelta(days=1),
    "d": dt.timedelta(days=1),
    "wk": dt.timedelta(weeks=1),
    "week": dt.timedelta(weeks=1),
}
#: Smallest rollup interval: a finer one is no rollup.
MIN_INTERVAL = dt.timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class Span:
    start: dt.datetime
    end: dt.datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise InvalidInputError(
                f"hisRead range ends ({self.end.isoformat()}) before it starts "
                f"({self.start.isoformat()})",
                code="haystack_bad_range",
            )


def _day_start(day: dt.date, tz: dt.tzinfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=tz)


def _one(text: str, tz: dt.tzinfo) -> tuple[dt.datetime, dt.datetime | None]:
    """(start, end of that day) for a date, (instant, None) for a date-time."""
    text = text.strip()
    m = _DATETIME.fullmatch(text)
    if m:
        try:
            stamp = parse_datetime(m.group(1), m.group(2), m.group(3), m.group(4))
        except ValueError as exc:
            raise InvalidInputError(f"Bad date-time {text!r} in hisRead range: {exc}") from exc
        return stamp.value, None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidInputError(
            f"Bad hisRead range part {text!r}: use today, yesterday, a date (2024-01-31) or "
            "a date-time with zone (2024-01-31T00:00:00Z UTC)",
            code="haystack_bad_range",
        ) from None
    return _day_start(day, tz), _day_start(day + dt.timedelta(days=1), tz)


def parse_range(text: str, tz: dt.tzinfo, *, now: dt.datetime | None = None) -> Span:
    now = now or dt.datetime.now(dt.UTC)
    raw = text.strip().strip('"')
    local_today = now.astimezone(tz).date()
    if raw == "today":
        return Span(_day_start(local_today, tz), _day_start(local_today + dt.timedelta(1), tz))
    if raw == "yesterday":
        day = local_today - dt.timedelta(days=1)
        return Span(_day_start(day, tz), _day_start(local_today, tz))
    if "," in raw:
        first, second = raw.split(",", 1)
        start, _ = _one(first, tz)
        begin_of_second, end_of_day = _one(second, tz)
        return Span(start, end_of_day or begin_of_second)
    start, end_of_day = _one(raw, tz)
    return Span(start, end_of_day or now)


def parse_interval(value: HValue) -> dt.timedelta:
    if isinstance(value, Number):
        unit = value.unit or ""
        amount = value.value
    elif isinstance(value, str) and (m := _DURATION.fullmatch(value)):
        amount, unit = float(m.group(1)), m.group(2)
    else:
        raise InvalidInputError(
            f"Bad hisRead interval {value!r}: use a duration such as 15min, 1h or 1day",
            code="haystack_bad_interval",
        )
    step = _UNITS.get(unit)
    if step is None or not math.isfinite(amount) or amount <= 0:
        raise InvalidInputError(
            f"Bad hisRead interval {value!r}: the unit must be one of {', '.join(_UNITS)} "
            "and the amount positive (months and years have no fixed length)",
            code="haystack_bad_interval",
        )
    interval = step * amount
    if interval < MIN_INTERVAL:
        raise InvalidInputError(
            f"hisRead interval {value!r} is shorter than {MIN_INTERVAL.total_seconds():g}s",
            code="haystack_bad_interval",
        )
    return interval


def parse_rollup(value: HValue, point: Record) -> Agg:
    if value is None:
        if isinstance(point.get("hisTotalized"), Marker):
            return "sum"
        return "last" if point.get("kind") in ("Bool", "Str") else "avg"
    name = getattr(value, "value", value)
    if not isinstance(name, str) or name not in AGGS:
        raise InvalidInputError(
            f"Unknown hisRead rollup {name!r}; one of {', '.join(AGGS)}",
            code="haystack_bad_rollup",
        )
    return cast(Agg, name)


def point_zone(point: Record) -> tuple[dt.tzinfo, str]:
    name = point.get("tz")
    if isinstance(name, str):
        zone = timezones.zone(name)
        if zone is not None:
            return zone, name
    return dt.UTC, "UTC"


def stamp(value: dt.datetime, zone: dt.tzinfo, name: str) -> DateTime:
    return DateTime(value.astimezone(zone), name)


def to_haystack(value: Value, unit: str | None) -> HValue:
    if value is None:
        return NA_VALUE
    if isinstance(value, bool | str):
        return value
    return Number(float(value), unit)


def from_haystack(value: HValue, unit: str | None, where: str) -> Value:
    """A hisWrite value as a reading value; units must match the point's."""
    if value is None or isinstance(value, NA):
        return None
    if isinstance(value, bool | str):
        return value
    if isinstance(value, Number):
        if not math.isfinite(value.value):
            return None
        if value.unit and unit and value.unit != unit:
            raise InvalidInputError(
                f"{where}: value {value.value:g}{value.unit} is not in the point's unit {unit}",
                code="haystack_unit_mismatch",
            )
        return value.value
    raise InvalidInputError(
        f"{where}: a history value must be a number, boolean, string or NA, not {value!r}"
    )


def timestamp(value: HValue, where: str) -> dt.datetime:
    if isinstance(value, DateTime):
        return value.value
    raise InvalidInputError(f"{where}: 'ts' must be a date-time with a zone, not {value!r}")
