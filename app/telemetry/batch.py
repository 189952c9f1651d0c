"""A JSON batch of readings, as POSTed over HTTP: parsed whole, or refused whole.

``{"readings": [{"point": "<uuid>", "time": "<RFC 3339>", "value": ...}, ...]}``. Every
problem (bad UUID, time without a zone, NaN, wrong type) is collected with its index, so a
client can fix a batch in one go; nothing from a batch with problems is stored.
"""

from __future__ import annotations

import json
import math
import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from app.domain.telemetry import Reading
from app.errors import InvalidInputError, PayloadTooLargeError
from app.telemetry.db import KIND_FLOAT
from app.telemetry.gc_pause import gc_paused
from app.telemetry.readings import EncodedBatch, Row, encode

MAX_PROBLEMS = 50


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid reading value")


class _Item(msgspec.Struct):
    """A reading as sent: validated in C while decoding (a time without a zone offset,
    NaN or a number out of range are refused there). ``point`` stays text: a batch names
    each point many times, and parsing each distinct text once (``_encode``) makes the
    whole decode about a fifth faster than letting msgspec build a UUID per reading."""

    point: str
    time: Annotated[datetime, msgspec.Meta(tz=True)]
    value: bool | int | float | str | None = None


class _Batch(msgspec.Struct):
    readings: list[_Item]


_DECODER = msgspec.json.Decoder(_Batch)


def parse_json_batch(data: bytes, *, max_readings: int) -> EncodedBatch:
    """Decode a batch straight into COPY rows (see app.telemetry.readings.encode_rows).

    The fast path validates in C (msgspec) and builds no intermediate Readings. A batch
    it refuses is parsed again by :func:`_parse_slowly`, which collects every problem with
    its index for the error response.
    """
    try:
        with gc_paused():
            items = _DECODER.decode(data).readings
            if len(items) > max_readings:
                raise PayloadTooLargeError(
                    f"The batch has {len(items)} readings; the limit is {max_readings}. "
                    "Split it.",
                    code="batch_too_large",
                )
            return _encode(items)
    except (msgspec.ValidationError, msgspec.DecodeError, ValueError) as exc:
        _parse_slowly(data, max_readings=max_readings)
        raise InvalidInputError(f"The batch is invalid: {exc}", code="bad_readings") from exc


def _encode(items: list[_Item]) -> EncodedBatch:
    """``encode_rows`` for decoded items whose points are still text (ValueError on a
    malformed UUID). Points are keyed by their UUIDs' integers, as there."""
    rows: list[Row] = []
    newest: dict[int, Row] = {}
    points: dict[str, tuple[uuid.UUID, int]] = {}
    append = rows.append
    get = newest.get
    known = points.get
    for item in items:
        text = item.point
        point = known(text)
        if point is None:
            parsed = uuid.UUID(text)
            point = points[text] = (parsed, parsed.int)
        v = item.value
        t = item.time
        row: Row = (
            (point[0], t, v, None, KIND_FLOAT) if type(v) is float else (point[0], t, *encode(v))
        )
        append(row)
        seen = get(point[1])
        if seen is None or t > seen[1]:
            newest[point[1]] = row
    return rows, {row[0]: row for row in newest.values()}


def _parse_slowly(data: bytes, *, max_readings: int) -> list[Reading]:
    try:
        doc = json.loads(data, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"The body is not valid JSON: {exc}", code="bad_json") from exc
    items = doc.get("readings") if isinstance(doc, dict) else None
    if not isinstance(items, list):
        raise InvalidInputError(
            'Send {"readings": [{"point": "<uuid>", "time": "<RFC 3339>", "value": ...}]}',
            code="bad_batch",
        )
    if len(items) > max_readings:
        raise PayloadTooLargeError(
            f"The batch has {len(items)} readings; the limit is {max_readings}. Split it.",
            code="batch_too_large",
        )
    readings: list[Reading] = []
    problems: list[dict[str, object]] = []
    # Gateways send many points per timestamp and many timestamps per point: parse each once.
    uuids: dict[str, uuid.UUID] = {}
    times: dict[str, datetime] = {}
    for i, item in enumerate(items):
        try:
            readings.append(_reading(item, uuids, times))
        except (ValueError, TypeError, KeyError) as exc:
            if len(problems) < MAX_PROBLEMS:
                problems.append({"index": i, "problem": str(exc).strip("'\"")})
            else:
                break
    if problems:
        raise InvalidInputError(
            f"{len(problems)}{'+' if len(problems) == MAX_PROBLEMS else ''} reading(s) are "
            f"invalid (first at index {problems[0]['index']}: {problems[0]['problem']}); "
            "nothing was stored.",
            code="bad_readings",
            problems=problems,
        )
    return readings


def _reading(item: Any, uuids: dict[str, uuid.UUID], times: dict[str, datetime]) -> Reading:
    if not isinstance(item, dict):
        raise TypeError("a reading is an object with point, time and value")
    point_text = item["point"]
    point = uuids.get(point_text)
    if point is None:
        if not isinstance(point_text, str):
            raise TypeError("point must be a UUID string")
        point = uuids[point_text] = uuid.UUID(point_text)
    time_text = item["time"]
    when = times.get(time_text)
    if when is None:
        if not isinstance(time_text, str):
            raise TypeError("time must be an RFC 3339 string")
        when = datetime.fromisoformat(time_text)
        if when.tzinfo is None:
            raise ValueError(f"time {time_text!r} has no zone offset (add Z or +hh:mm)")
        times[time_text] = when
    value = item.get("value")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError("value must be finite")
    if not (value is None or isinstance(value, bool | int | float | str)):
        raise TypeError("value must be a number, boolean, string or null")
    return Reading(point, when, value)
