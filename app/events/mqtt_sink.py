"""Events to MQTT: every event the process publishes also goes to the broker.

Topic: ``twingraph/events/<type with dots as slashes>`` (``twingraph/events/command/expired``),
payload the event's JSON (as SSE sends it), QoS 1. The bridge is a sink of the bus, so an
event leaves once, from the process that made it; subscribers use MQTT wildcards
(``twingraph/events/command/#``) and filter the rest from the payload.
"""

from __future__ import annotations

import json
import ssl
import uuid

from app.events.bus import EventBus
from app.events.model import Event
from app.telemetry.mqtt_client import LeanClient, Options
from app.telemetry.mqtt_ingest import parse_url

TOPIC_PREFIX = "twingraph/events/"


def topic_for(event: Event) -> str:
    return TOPIC_PREFIX + event.type.replace(".", "/")


def payload_for(event: Event) -> bytes:
    return json.dumps(event.as_dict(), separators=(",", ":")).encode()


class MqttEventSink:
    def __init__(self, url: str, *, client_id_prefix: str = "twingraph-events") -> None:
        address = parse_url(url)
        self.client = LeanClient(
            Options(
                host=address.host,
                port=address.port,
                # Unique per process: two API processes must not take over each other's session.
                client_id=f"{client_id_prefix}-{uuid.uuid4().hex[:8]}",
                subscriptions=(),
                tls=ssl.create_default_context() if address.tls else None,
                username=address.username,
                password=address.password,
                clean_start=True,
                session_expiry_s=0,
            ),
            on_messages=lambda _generation, _messages: None,
        )

    def __call__(self, event: Event) -> None:
        self.client.publish(topic_for(event), payload_for(event), qos=1)

    def attach(self, bus: EventBus) -> None:
        self.client.start()
        bus.sinks.append(self)

    def detach(self, bus: EventBus) -> None:
        if self in bus.sinks:
            bus.sinks.remove(self)
        self.client.stop()
