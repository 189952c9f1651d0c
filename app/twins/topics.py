"""The MQTT topic scheme of the device channel.

To the device (published by TwinGraph, QoS 1)::

    twingraph/devices/<twin id>/desired    {"twin", "ts", "version", "full", "props": {name: value}}
    twingraph/devices/<twin id>/commands   {"twin", "ts", "id", "name", "input", "expires"}
    twingraph/devices/<twin id>/errors     {"twin", "ts", "topic", "code", "detail"}

From the device (TwinGraph subscribes, QoS 1)::

    twingraph/devices/<twin id>/reported   {"ts", "props": {name: value}, "desiredVersion"?}
    twingraph/devices/<twin id>/ack        {"ts", "desired": <version>, "error"?}
                                           | {"ts", "command": <id>, "accepted"?: bool, "error"?}
    twingraph/devices/<twin id>/result     {"ts", "command": <id>, "ok": bool, "output"?, "error"?}
    twingraph/devices/<twin id>/heartbeat  {"ts", "status": "online" | "offline", "boot"?: bool}

Every payload is a signed envelope (``app.twins.credentials``). A twin id is one topic
level; ``points`` is reserved so that ``twingraph/+/points/+`` (telemetry) never
matches a device topic.
"""

from __future__ import annotations

ROOT = "twingraph/devices"
TO_DEVICE = ("desired", "commands", "errors")
FROM_DEVICE = ("reported", "ack", "result", "heartbeat")
#: What the platform subscribes to.
SUBSCRIPTIONS = tuple((f"{ROOT}/+/{kind}", 1) for kind in FROM_DEVICE)


def topic(twin_id: str, kind: str) -> str:
    return f"{ROOT}/{twin_id}/{kind}"


def parse(topic_name: str) -> tuple[str, str] | None:
    """(twin id, kind) of a device topic, or None for anything else."""
    parts = topic_name.split("/")
    if len(parts) != 4 or f"{parts[0]}/{parts[1]}" != ROOT or not parts[2]:
        return None
    return parts[2], parts[3]
