"""MQTT into the platform: a real Mosquitto, the platform's ingest, PostgreSQL behind it."""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.errors import UnavailableError
from app.platform import Platform
from app.telemetry.broker import LocalMosquitto
from app.telemetry.live import start_demo_feed, start_mqtt_ingest
from app.telemetry.mqtt_ingest import parse_url


@pytest.fixture(scope="module")
def broker() -> Iterator[str]:
    root = Path(tempfile.mkdtemp(prefix="twingraph-live-mqtt-"))
    root.chmod(0o755)
    local = LocalMosquitto(root)
    try:
        url = local.start()
    except UnavailableError as exc:
        pytest.skip(f"mosquitto is not installed: {exc.detail}")
    yield url
    local.stop()


def publisher(url: str) -> mqtt.Client:
    address = parse_url(url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(address.host, address.port)
    client.loop_start()
    return client


def wait_for(check: object, timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        time.sleep(0.1)
    return False


def test_platform_stores_mqtt_readings_and_rejects_unknown_points(
    platform: Platform, demo_graph: str, broker: str
) -> None:
    platform.settings.mqtt_client_id = f"twingraph-test-{uuid.uuid4().hex[:6]}"
    platform.settings.mqtt_url = broker
    ingest = start_mqtt_ingest(platform)
    assert ingest is not None and ingest.wait_connected(10)
    errors: list[dict[str, object]] = []
    pub = publisher(broker)
    pub.on_message = lambda _c, _u, msg: errors.append(json.loads(msg.payload))
    pub.subscribe("twingraph/+/errors", qos=1)
    time.sleep(0.3)
    try:
        point = next(r.uuid for r in platform.points.all() if r.timeseries_id)
        when = datetime(2088, 5, 1, 12, 0, tzinfo=UTC)
        pub.publish(
            f"twingraph/b1/points/{point}",
            json.dumps({"time": when.isoformat(), "value": 19.5}),
            qos=1,
        )
        stranger = uuid.uuid4()
        pub.publish(f"twingraph/b1/points/{stranger}", "20.0", qos=1)
        assert platform.telemetry is not None
        telemetry = platform.telemetry

        def stored() -> list[object]:
            # Other tests write to the same demo points at other times: look at ours only.
            return list(telemetry.range(point=point, start=when, end=when + timedelta(seconds=1)))

        assert wait_for(lambda: len(stored()) == 1)
        assert [
            r.value
            for r in telemetry.range(point=point, start=when, end=when + timedelta(seconds=1))
        ] == [19.5]
        assert wait_for(lambda: any(e.get("reason") == "unknown point" for e in errors))
        assert platform.telemetry.latest(points=[stranger]) == {}
    finally:
        pub.loop_stop()
        pub.disconnect()
        ingest.stop()
        platform.settings.mqtt_url = None


def test_demo_feed_moves_readings(platform: Platform, demo_graph: str, broker: str) -> None:
    platform.settings.mqtt_client_id = f"twingraph-test-{uuid.uuid4().hex[:6]}"
    platform.settings.mqtt_url = broker
    ingest = start_mqtt_ingest(platform)
    assert ingest is not None
    feed = start_demo_feed(platform, broker, graph=demo_graph, interval_s=0.2)
    try:
        assert feed.points > 20
        assert wait_for(lambda: ingest.stored >= 2 * feed.points, timeout=20)
    finally:
        feed.stop()
        ingest.stop()
        platform.settings.mqtt_url = None
