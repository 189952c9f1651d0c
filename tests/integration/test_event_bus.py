"""The event bus across processes (PostgreSQL LISTEN/NOTIFY) and out to a real MQTT broker."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path

from app.domain.telemetry import Reading
from app.events.bus import EventBus
from app.events.model import Event, EventFilter
from app.events.mqtt_sink import MqttEventSink
from app.platform import Platform
from app.telemetry.broker import LocalMosquitto
from tests.integration.test_mqtt_ingest import Client, broker, eventually

__all__ = ["broker"]  # the fixture, reused

REPO = Path(__file__).resolve().parents[2]


def _other_process(dsn: str, code: str) -> None:
    """Run ``code`` in a fresh interpreter with ``bus`` (its own EventBus) and ``store``."""
    prelude = (
        "from app.telemetry.db import connect_pool\n"
        "from app.events.bus import EventBus\n"
        "from app.events.model import Event\n"
        "from app.telemetry.readings import open_store\n"
        "from app.domain.telemetry import Reading\n"
        "import uuid, datetime\n"
        f"pool = connect_pool({dsn!r})\n"
        "bus = EventBus(pool)\n"
        "store = open_store(pool)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_events_and_readings_from_another_process_reach_this_one(platform: Platform) -> None:
    bus = platform.events
    assert bus is not None and platform.settings.database_url is not None
    bus.start()
    assert bus.listening
    twin = f"urn:ex:twin-{uuid.uuid4().hex[:8]}"
    point = uuid.uuid4()
    seen: list[Event] = []
    readings: list[Reading] = []
    lock = threading.Lock()

    def on_event(event: Event) -> None:
        if event.twin == twin:
            with lock:
                seen.append(event)

    def on_readings(batch: list[Reading]) -> None:
        with lock:
            readings.extend(r for r in batch if r.point == point)

    undo_events, undo_readings = bus.on_event(on_event), bus.on_readings(on_readings)
    try:
        _other_process(
            platform.settings.database_url,
            "for i in range(3):\n"
            f"    bus.publish(Event(type='reported', twin={twin!r}, data={{'i': i}}))\n"
            f"store.write(readings=[Reading(uuid.UUID({str(point)!r}), "
            "datetime.datetime(2092, 1, 1, tzinfo=datetime.timezone.utc), 7.5)])\n",
        )
        eventually(lambda: len(seen) == 3 and len(readings) == 1)
    finally:
        undo_events()
        undo_readings()
    assert [e.data["i"] for e in seen] == [0, 1, 2]  # in order
    assert [e.id for e in seen] == sorted(e.id for e in seen if e.id is not None)
    assert readings == [Reading(point, datetime(2092, 1, 1, tzinfo=UTC), 7.5)]
    # The log holds them too, for consumers that reconnect.
    stored = bus.fetch(after_id=(seen[0].id or 0) - 1, filter=EventFilter.of(twins=[twin]))
    assert [e.data["i"] for e in stored] == [0, 1, 2]


def test_events_go_out_to_mqtt(platform: Platform, broker: LocalMosquitto) -> None:
    assert platform.db is not None
    bus = EventBus(platform.db)
    watcher = Client(broker.url, watch="twingraph/events/command/#")
    sink = MqttEventSink(broker.url)
    sink.attach(bus)
    try:
        bus.publish(Event(type="reported", twin="urn:ex:a"))  # not watched
        stored = bus.publish(Event(type="command.expired", twin="urn:ex:a", data={"n": 1}))
        eventually(lambda: len(watcher.messages) == 1)
    finally:
        sink.detach(bus)
        watcher.close()
    message = watcher.messages[0]
    assert message["id"] == stored.id and message["type"] == "command.expired"
    assert message["twin"] == "urn:ex:a" and message["data"] == {"n": 1}
