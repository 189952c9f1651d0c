"""The MQTT topic scheme of TwinGraph and the parsing of its payloads into readings.

Topics (``<site>`` is one topic level naming the building or gateway; it only routes
rejections back to the publisher, the point UUID alone identifies the series)::

    twingraph/<site>/points/<uuid>   one reading of one point; payload is one of
                                     21.5 | 42 | true | false | null | "occupied" (a JSON string)
                                     | {"time": "<RFC 3339>", "value": <any of the above>}
    twingraph/<site>/telemetry       {"readings": [{"point": "<uuid>", "time": "...",
                                                    "value": ...}, ...]}
    twingraph/<site>/errors          published by TwinGraph: one JSON object per rejection,
                                     {"topic", "reason", "payload", "index"?, "received"}

``time`` is optional everywhere (the receive time is used) and must carry a zone offset.
Nothing that fails to parse is dropped silently: parsing returns it as a ``Rejection``,
and the ingest publishes those to the errors topic. Functions here are pure so the
contract is unit-tested without a broker.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.telemetry import Reading, Value

ROOT = "twingraph"
#: Filters the ingest subscribes to (QoS 1).
SUBSCRIPTIONS = (f"{ROOT}/+/points/+", f"{ROOT}/+/telemetry")
#: Offending payloads are cut to this many characters in rejections, so one bad
#: megabyte batch cannot turn into a megabyte error message.
MAX_ECHO = 512

UNKNOWN_POINT = "unknown point"

_READING_KEYS = frozenset({"time", "value"})
_BATCH_ITEM_KEYS = frozenset({"point", "time", "value"})


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why (part of) a message was not stored. ``index`` is the position in a batch."""

    topic: str
    reason: str
    payload: str
    index: int | None = None

    def to_json(self, received: datetime) -> bytes:
        body: dict[str, Any] = {"topic": self.topic, "reason": self.reason}
        if self.index is not None:
            body["index"] = self.index
        body["payload"] = self.payload
        body["received"] = received.isoformat()
        return json.dumps(body, ensure_ascii=False).encode()


@dataclass(slots=True)
class Parsed:
    """What one MQTT message yielded: readings to store and what was refused."""

    readings: list[Reading] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


class _BadPayload(Exception):
    """Internal: carries the reason of a rejection out of nested parsing."""


def site_of(topic: str) -> str | None:
    """The ``<site>`` level of a TwinGraph topic, or None for a foreign topic."""
    parts = topic.split("/")
    if len(parts) >= 3 and parts[0] == ROOT and parts[1]:
        return parts[1]
    return None


def errors_topic(site: str) -> str:
    return f"{ROOT}/{site}/errors"


def point_topic(site: str, point: uuid.UUID) -> str:
    return f"{ROOT}/{site}/points/{point}"


def telemetry_topic(site: str) -> str:
    return f"{ROOT}/{site}/telemetry"


def truncate(payload: bytes | str, limit: int = MAX_ECHO) -> str:
    text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else payload
    return text if len(text) <= limit else text[:limit] + "…"


def parse_message(
    topic: str,
    payload: bytes,
    *,
    received: datetime,
    known_point: Callable[[uuid.UUID], bool] | None = None,
) -> Parsed:
    """Parse one message from a subscribed topic. ``received`` stands in for absent times;
    readings of points ``known_point`` refuses are rejected with reason "unknown point"."""
    parts = topic.split("/")
    out = Parsed()
    check = known_point or _any_point
    try:
        if len(parts) == 4 and parts[0] == ROOT and parts[2] == "points":
            point = _parse_uuid(parts[3], what="point UUID in topic")
            reading = _parse_point_payload(point, payload, received)
            if not check(point):
                raise _BadPayload(UNKNOWN_POINT)
            out.readings.append(reading)
        elif len(parts) == 3 and parts[0] == ROOT and parts[2] == "telemetry":
            _parse_batch(topic, payload, received, check, out)
        else:
            raise _BadPayload("topic is not part of the TwinGraph scheme")
    except _BadPayload as exc:
        out.rejections.append(Rejection(topic, str(exc), truncate(payload)))
    return out


def _parse_point_payload(point: uuid.UUID, payload: bytes, received: datetime) -> Reading:
    doc = _load_json(payload)
    if isinstance(doc, dict):
        return _reading_from(point, doc, received, allowed=_READING_KEYS)
    return Reading(point, received, _check_value(doc))


def _any_point(point: uuid.UUID) -> bool:
    return True


def _parse_batch(
    topic: str,
    payload: bytes,
    received: datetime,
    known_point: Callable[[uuid.UUID], bool],
    out: Parsed,
) -> None:
    doc = _load_json(payload)
    if not isinstance(doc, dict) or not isinstance(doc.get("readings"), list):
        raise _BadPayload('batch must be a JSON object {"readings": [...]}')
    if extra := set(doc) - {"readings"}:
        raise _BadPayload(f"unknown batch keys: {', '.join(sorted(extra))}")
    for index, item in enumerate(doc["readings"]):
        try:
            if not isinstance(item, dict):
                raise _BadPayload("batch item must be a JSON object")
            if "point" not in item:
                raise _BadPayload('batch item has no "point"')
            if not isinstance(item["point"], str):
                raise _BadPayload("point must be a UUID string")
            point = _parse_uuid(item["point"], what="point UUID")
            reading = _reading_from(point, item, received, allowed=_BATCH_ITEM_KEYS)
            if not known_point(point):
                raise _BadPayload(UNKNOWN_POINT)
            out.readings.append(reading)
        except _BadPayload as exc:
            echo = truncate(json.dumps(item, ensure_ascii=False, allow_nan=True))
            out.rejections.append(Rejection(topic, str(exc), echo, index=index))


def _reading_from(
    point: uuid.UUID, doc: dict[str, Any], received: datetime, *, allowed: frozenset[str]
) -> Reading:
    if extra := set(doc) - allowed:
        raise _BadPayload(f"unknown keys: {', '.join(sorted(extra))}")
    if "value" not in doc:
        raise _BadPayload('reading has no "value"')
    time = received if doc.get("time") is None else _parse_time(doc["time"])
    return Reading(point, time, _check_value(doc["value"]))


def _load_json(payload: bytes) -> Any:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _BadPayload("payload is not UTF-8") from exc
    if not text.strip():
        raise _BadPayload("empty payload")
    try:
        # NaN/Infinity parse to floats here and are refused by _check_value with a
        # clearer reason than a syntax error would give.
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _BadPayload(
            f"not a number, true/false, null, JSON string or JSON object "
            f"({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from exc


def _check_value(value: Any) -> Value:
    if isinstance(value, float) and not math.isfinite(value):
        raise _BadPayload("value is not finite (NaN or infinity)")
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise _BadPayload("value must be a number, boolean, string or null")


def _parse_uuid(text: str, *, what: str) -> uuid.UUID:
    try:
        return uuid.UUID(text)
    except ValueError as exc:
        raise _BadPayload(f"bad {what}: {truncate(text, 64)!r}") from exc


def _parse_time(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _BadPayload("time must be an RFC 3339 string")
    try:
        time = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _BadPayload(f"bad timestamp: {truncate(value, 64)!r}") from exc
    if time.tzinfo is None:
        raise _BadPayload(f"timestamp has no time zone offset: {truncate(value, 64)!r}")
    return time
