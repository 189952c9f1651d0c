"""MQTT ingest against a real mosquitto (a LocalMosquitto per test on a free loopback port,
with persistence on, so broker restarts keep sessions like a production broker would)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.domain.telemetry import Reading
from app.errors import UnavailableError
from app.telemetry.broker import LocalMosquitto, find_mosquitto
from app.telemetry.mqtt_ingest import MqttIngest
from app.telemetry.mqtt_topics import point_topic, telemetry_topic
from app.telemetry.simulator import PointSpec, Simulator

REPO = Path(__file__).resolve().parents[2]
SITE = "hq"
P1 = uuid.UUID("3f2a6c3e-0000-4000-8000-000000000001")
P2 = uuid.UUID("3f2a6c3e-0000-4000-8000-000000000002")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalMosquitto]:
    try:
        find_mosquitto()
    except UnavailableError as exc:
        pytest.skip(exc.detail)
    b = LocalMosquitto(tmp_path / "mosquitto")
    b.start()
    yield b
    b.stop()


class Sink:
    """The store callback: an in-memory list, optionally failing on demand."""

    def __init__(self) -> None:
        self.readings: list[Reading] = []
        self.calls = 0
        self.fail = False
        self.lock = threading.Lock()

    def __call__(self, readings: list[Reading]) -> None:
        if self.fail:
            raise RuntimeError("store is down")
        with self.lock:
            self.calls += 1
            self.readings.extend(readings)


class Client:
    """A plain paho client for publishing and for watching the errors topics."""

    def __init__(self, url: str, *, watch: str | None = None) -> None:
        port = int(url.rsplit(":", 1)[1])
        self.messages: list[dict[str, object]] = []
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.on_message = lambda _c, _u, m: self.messages.append(json.loads(m.payload))
        subscribed = threading.Event()
        self.c.on_subscribe = lambda *_: subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        if watch is not None:
            self.c.subscribe(watch, qos=1)
            assert subscribed.wait(5)

    def publish(self, topic: str, payload: bytes | str) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def eventually(check: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.01)


def head(reason: str) -> str:
    """A rejection reason without its details (positions, the offending text)."""
    return reason.split(" (")[0].split(":")[0]


def started(broker: LocalMosquitto, store: Sink, **kw: object) -> MqttIngest:
    kw.setdefault("client_id", f"twingraph-test-{uuid.uuid4().hex[:8]}")
    ingest = MqttIngest(broker.url, store=store, **kw)  # type: ignore[arg-type]
    ingest.start()
    assert ingest.wait_connected(5)
    time.sleep(0.05)  # the SUBACK: subscriptions are live shortly after CONNACK
    return ingest


def test_point_payload_forms_are_stored(broker: LocalMosquitto) -> None:
    sink = Sink()
    ingest = started(broker, sink)
    pub = Client(broker.url)
    try:
        before = datetime.now(UTC)
        pub.publish(point_topic(SITE, P1), "21.5")
        pub.publish(point_topic(SITE, P1), "true")
        pub.publish(point_topic(SITE, P1), '{"time": "2024-05-01T12:00:00+02:00", "value": 7}')
        pub.publish(point_topic(SITE, P1), '"occupied"')
        eventually(lambda: len(sink.readings) == 4)
    finally:
        pub.close()
        ingest.stop()
    values = [r.value for r in sink.readings]
    assert values == [21.5, True, 7, "occupied"]
    assert sink.readings[2].time == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    assert sink.readings[0].time >= before
    assert (ingest.received, ingest.stored, ingest.rejected) == (4, 4, 0)
    assert not ingest.connected


def test_batches_are_stored_together(broker: LocalMosquitto) -> None:
    sink = Sink()
    ingest = started(broker, sink, batch_ms=200)
    pub = Client(broker.url)
    n = 2000
    rows = [
        {"point": str(P1 if i % 2 else P2), "time": f"2024-05-01T00:00:{i % 60:02d}Z", "value": i}
        for i in range(n)
    ]
    try:
        for chunk in range(0, n, 500):
            pub.publish(telemetry_topic(SITE), json.dumps({"readings": rows[chunk : chunk + 500]}))
        eventually(lambda: len(sink.readings) == n)
    finally:
        pub.close()
        ingest.stop()
    assert sorted(int(r.value) for r in sink.readings if r.value is not None) == list(range(n))
    assert sink.calls < 4  # 4 messages arrive within one 200 ms window, not one call each
    assert ingest.stored == n


def test_bad_payloads_go_to_the_errors_topic_and_good_ones_are_kept(broker: LocalMosquitto) -> None:
    sink = Sink()
    ingest = started(broker, sink)
    pub = Client(broker.url, watch="twingraph/+/errors")
    batch = {
        "readings": [
            {"point": str(P1), "value": 1.5},
            {"point": str(P1), "value": float("nan")},
            {"point": str(P2), "time": "yesterday", "value": 2},
            {"point": "not-a-uuid", "value": 3},
            {"point": str(P2), "time": "2024-05-01T00:00:00Z", "value": 4},
        ]
    }
    try:
        pub.publish(telemetry_topic(SITE), json.dumps(batch))  # NaN: Python writes it
        pub.publish(point_topic(SITE, P1), "warm")
        pub.publish(point_topic(SITE, P1), "Infinity")
        pub.publish("twingraph/hq/points/12345", "20")
        pub.publish(telemetry_topic("other"), b"\xff\xfe")
        eventually(lambda: len(pub.messages) == 7 and len(sink.readings) == 2)
    finally:
        pub.close()
        ingest.stop()
    assert [r.value for r in sink.readings] == [1.5, 4]
    assert ingest.rejected == 7
    reasons = {(m["topic"], m.get("index"), head(str(m["reason"]))) for m in pub.messages}
    p1 = point_topic(SITE, P1)
    assert reasons == {
        ("twingraph/hq/telemetry", 1, "value is not finite"),
        ("twingraph/hq/telemetry", 2, "bad timestamp"),
        ("twingraph/hq/telemetry", 3, "bad point UUID"),
        (p1, None, "not a number, true/false, null, JSON string or JSON object"),
        (p1, None, "value is not finite"),
        ("twingraph/hq/points/12345", None, "bad point UUID in topic"),
        ("twingraph/other/telemetry", None, "payload is not UTF-8"),
    }
    warm = next(m for m in pub.messages if m["payload"] == "warm")
    assert warm["topic"] == point_topic(SITE, P1)


def test_unknown_points_are_rejected_not_stored(broker: LocalMosquitto) -> None:
    sink = Sink()
    ingest = started(broker, sink, known_point={P1}.__contains__)
    pub = Client(broker.url, watch="twingraph/+/errors")
    try:
        pub.publish(point_topic(SITE, P2), "1")
        pub.publish(
            telemetry_topic(SITE),
            json.dumps(
                {"readings": [{"point": str(P2), "value": 2}, {"point": str(P1), "value": 3}]}
            ),
        )
        eventually(lambda: len(pub.messages) == 2 and len(sink.readings) == 1)
    finally:
        pub.close()
        ingest.stop()
    assert [(r.point, r.value) for r in sink.readings] == [(P1, 3)]
    assert {m["reason"] for m in pub.messages} == {"unknown point"}
    assert {m.get("index") for m in pub.messages} == {None, 0}


def test_survives_broker_restarts_and_gets_what_was_queued_meanwhile(
    broker: LocalMosquitto,
) -> None:
    sink = Sink()
    client_id = "twingraph-restart"
    ingest = started(broker, sink, client_id=client_id)
    try:
        # 1. The broker goes away under a running ingest and comes back.
        broker.stop()
        eventually(lambda: not ingest.connected)
        broker.start()
        pub = Client(broker.url)
        for i in range(5):  # likely before the ingest is back: queued in its session
            pub.publish(point_topic(SITE, P1), str(i))
        pub.close()
        eventually(lambda: len(sink.readings) == 5)
        assert ingest.connects == 2
    finally:
        ingest.stop()
    # 2. The ingest is down while readings are published and the broker restarts.
    pub = Client(broker.url)
    for i in range(5, 10):
        pub.publish(point_topic(SITE, P1), str(i))
    pub.close()
    broker.stop()
    broker.start()
    ingest = started(broker, sink, client_id=client_id)
    try:
        eventually(lambda: len(sink.readings) == 10)
    finally:
        ingest.stop()
    assert [r.value for r in sink.readings] == list(range(10))


def test_a_failing_store_leaves_messages_unacked_for_redelivery(broker: LocalMosquitto) -> None:
    sink = Sink()
    sink.fail = True
    ingest = started(broker, sink, client_id="twingraph-failing")
    pub = Client(broker.url)
    pub.publish(point_topic(SITE, P1), "42")
    eventually(lambda: ingest.store_errors >= 2)  # retried, never acknowledged
    ingest.stop(timeout=0.2)
    assert ingest.stored == 0

    sink.fail = False
    ingest = started(broker, sink, client_id="twingraph-failing")
    try:
        eventually(lambda: len(sink.readings) == 1)
    finally:
        ingest.stop()
        pub.close()
    assert sink.readings[0].value == 42


def test_a_reading_survives_kill_9_before_the_store_commits(broker: LocalMosquitto) -> None:
    """The store never returns in the child; kill -9 must not lose the reading."""
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""\
                import sys, threading
                from app.telemetry.mqtt_ingest import MqttIngest
                def store(readings):
                    print("storing", flush=True)
                    threading.Event().wait()
                ingest = MqttIngest({broker.url!r}, client_id="twingraph-kill", store=store)
                ingest.start()
                ingest.wait_connected(5)
                print("connected", flush=True)
                threading.Event().wait()
                """),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"connected"
        time.sleep(0.1)  # the SUBACK
        pub = Client(broker.url)
        pub.publish(point_topic(SITE, P1), "99")
        pub.close()
        assert child.stdout.readline().strip() == b"storing"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        if child.stdout is not None:
            child.stdout.close()
    sink = Sink()
    ingest = started(broker, sink, client_id="twingraph-kill")
    try:
        eventually(lambda: len(sink.readings) == 1)
    finally:
        ingest.stop()
    assert sink.readings[0].value == 99


def test_the_simulator_feeds_the_ingest(broker: LocalMosquitto) -> None:
    specs = [
        PointSpec(P1, "Zone_Air_Temperature_Sensor"),
        PointSpec(P2, "Damper_Position_Command"),
    ]
    sink = Sink()
    ingest = started(broker, sink, known_point={P1, P2}.__contains__)
    sim = Simulator(broker.url, specs, site=SITE, interval_s=0.02, seed=1)
    try:
        sim.run(ticks=10)
        eventually(lambda: len(sink.readings) == 20)
    finally:
        sim.close()
        ingest.stop()
    temps = [r.value for r in sink.readings if r.point == P1]
    dampers = [r.value for r in sink.readings if r.point == P2]
    assert all(isinstance(t, float) and 15 < t < 30 for t in temps)
    assert all(isinstance(d, float) and 0 <= d <= 100 for d in dampers)
    assert ingest.rejected == 0
    assert not any(isinstance(v, float) and math.isnan(v) for v in temps)


def test_many_rejections_stay_within_the_brokers_receive_maximum(broker: LocalMosquitto) -> None:
    """mosquitto announces a Receive Maximum of 20 unacknowledged QoS 1 publishes per
    client; the ingest's client queues the rest until PUBACKs free room (the MQTT 5 rule,
    which stricter brokers enforce by disconnecting). All 150 rejections must arrive."""
    sink = Sink()
    ingest = started(broker, sink)
    pub = Client(broker.url, watch="twingraph/+/errors")
    try:
        pub.publish(
            telemetry_topic(SITE),
            json.dumps({"readings": [{"point": "nope", "value": i} for i in range(150)]}),
        )
        eventually(lambda: len(pub.messages) == 150)
    finally:
        pub.close()
        ingest.stop()
    assert sorted(int(str(m["index"])) for m in pub.messages) == list(range(150))
    assert ingest.connects == 1


def test_keepalive_pings_keep_an_idle_connection(broker: LocalMosquitto) -> None:
    sink = Sink()
    ingest = started(broker, sink, keepalive_s=1)
    try:
        time.sleep(2.2)  # mosquitto drops a silent client after 1.5 keepalives
        assert ingest.connected
        assert ingest.connects == 1
    finally:
        ingest.stop()
    log = (broker.root / "mosquitto.log").read_text()
    assert "exceeded timeout" not in log
