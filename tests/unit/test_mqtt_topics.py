"""The MQTT topic scheme and payload contract, without a broker."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from app.telemetry.mqtt_topics import (
    MAX_ECHO,
    Rejection,
    errors_topic,
    parse_message,
    point_topic,
    site_of,
    telemetry_topic,
)

P = uuid.UUID("3f2a6c3e-0000-4000-8000-000000000001")
Q = uuid.UUID("3f2a6c3e-0000-4000-8000-000000000002")
NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
PT = point_topic("hq", P)
TT = telemetry_topic("hq")


def test_topics() -> None:
    assert point_topic("hq", P) == f"twingraph/hq/points/{P}"
    assert telemetry_topic("hq") == "twingraph/hq/telemetry"
    assert errors_topic("hq") == "twingraph/hq/errors"
    assert site_of(PT) == "hq"
    assert site_of("other/hq/telemetry") is None


@pytest.mark.parametrize(
    ("payload", "value"),
    [
        (b"21.5", 21.5),
        (b" 42\n", 42),
        (b"-1e3", -1000.0),
        (b"true", True),
        (b"false", False),
        (b"null", None),
        (b'"occupied"', "occupied"),
        (b'{"value": 3}', 3),
    ],
)
def test_point_payload_values(payload: bytes, value: object) -> None:
    parsed = parse_message(PT, payload, received=NOW)
    assert parsed.rejections == []
    [reading] = parsed.readings
    assert (reading.point, reading.time, reading.value) == (P, NOW, value)
    assert type(reading.value) is type(value)


def test_point_payload_with_time_keeps_its_offset() -> None:
    parsed = parse_message(
        PT, b'{"time": "2024-05-01T14:00:00.250+02:00", "value": 1}', received=NOW
    )
    [reading] = parsed.readings
    assert reading.time == NOW + timedelta(milliseconds=250)
    assert reading.time.utcoffset() == timezone(timedelta(hours=2)).utcoffset(None)
    z = parse_message(PT, b'{"time": "2024-05-01T12:00:00Z", "value": 1}', received=NOW)
    assert z.readings[0].time == NOW


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty payload"),
        (b"warm", "not a number, true/false, null, JSON string or JSON object"),
        (b"NaN", "value is not finite"),
        (b"-Infinity", "value is not finite"),
        (b"[1, 2]", "value must be a number, boolean, string or null"),
        (b"\xff", "payload is not UTF-8"),
        (b'{"time": "2024-05-01T12:00:00Z"}', 'reading has no "value"'),
        (b'{"value": 1, "unit": "degC"}', "unknown keys"),
        (b'{"time": "2024-05-01 12:00", "value": 1}', "timestamp has no time zone offset"),
        (b'{"time": "yesterday", "value": 1}', "bad timestamp"),
        (b'{"time": 1714564800, "value": 1}', "time must be an RFC 3339 string"),
        (b'{"value": {"a": 1}}', "value must be a number"),
    ],
)
def test_bad_point_payloads_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    parsed = parse_message(PT, payload, received=NOW)
    assert parsed.readings == []
    [rejection] = parsed.rejections
    assert rejection.reason.startswith(reason)
    assert (rejection.topic, rejection.index) == (PT, None)
    assert rejection.payload == payload.decode("utf-8", "replace")


def test_bad_uuid_in_topic() -> None:
    [rejection] = parse_message("twingraph/hq/points/zone-1", b"1", received=NOW).rejections
    assert rejection.reason == "bad point UUID in topic: 'zone-1'"


def test_batch_keeps_good_readings_and_rejects_bad_items() -> None:
    items = [
        {"point": str(P), "time": "2024-05-01T12:00:00Z", "value": 1.5},
        {"point": str(Q), "value": float("inf")},
        {"point": "nope", "value": 1},
        {"value": 1},
        "21.5",
        {"point": str(Q), "value": "on"},
    ]
    parsed = parse_message(TT, json.dumps({"readings": items}).encode(), received=NOW)
    assert [(r.point, r.value) for r in parsed.readings] == [(P, 1.5), (Q, "on")]
    assert [(r.index, r.reason.split(":")[0]) for r in parsed.rejections] == [
        (1, "value is not finite (NaN or infinity)"),
        (2, "bad point UUID"),
        (3, 'batch item has no "point"'),
        (4, "batch item must be a JSON object"),
    ]
    assert parsed.rejections[1].payload == '{"point": "nope", "value": 1}'


@pytest.mark.parametrize(
    "payload", [b"[]", b'{"readings": {}}', b'{"points": []}', b'{"readings": [], "x": 1}', b"1"]
)
def test_malformed_batches_are_rejected_whole(payload: bytes) -> None:
    parsed = parse_message(TT, payload, received=NOW)
    assert parsed.readings == []
    assert len(parsed.rejections) == 1
    assert parsed.rejections[0].index is None


def test_unknown_points_are_rejected() -> None:
    known = {P}.__contains__
    single = parse_message(point_topic("hq", Q), b"1", received=NOW, known_point=known)
    assert [r.reason for r in single.rejections] == ["unknown point"]
    assert single.readings == []
    batch = {"readings": [{"point": str(Q), "value": 1}, {"point": str(P), "value": 2}]}
    parsed = parse_message(TT, json.dumps(batch).encode(), received=NOW, known_point=known)
    assert [r.value for r in parsed.readings] == [2]
    assert [(r.index, r.reason) for r in parsed.rejections] == [(0, "unknown point")]


def test_rejections_echo_a_truncated_payload_as_json() -> None:
    big = b'"' + b"x" * 10_000
    [rejection] = parse_message(PT, big, received=NOW).rejections
    assert len(rejection.payload) == MAX_ECHO + 1
    body = json.loads(Rejection(PT, "bad", "x", index=3).to_json(NOW))
    assert body == {
        "topic": PT,
        "reason": "bad",
        "index": 3,
        "payload": "x",
        "received": "2024-05-01T12:00:00+00:00",
    }
