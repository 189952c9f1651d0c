"""LocalMosquitto: a real mosquitto daemon, started, reused, restarted and stopped."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from app.errors import UnavailableError
from app.telemetry.broker import LocalMosquitto, find_mosquitto

AS_ROOT = os.geteuid() == 0


@pytest.fixture(params=["traversable", "private"])
def root(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Path]:
    """``traversable``: under a world-traversable directory, so as root the broker drops
    privileges to the ``mosquitto`` user; ``private``: under pytest's 0700 tmp dir, which
    that user cannot reach, so the broker stays root."""
    try:
        find_mosquitto()
    except UnavailableError as exc:
        pytest.skip(exc.detail)
    if request.param == "private":
        yield tmp_path / "broker"
        return
    parent = Path(tempfile.mkdtemp(prefix="twingraph-mqtt-"))
    parent.chmod(0o755)
    try:
        yield parent / "broker"
    finally:
        LocalMosquitto(parent / "broker").stop()
        shutil.rmtree(parent)


def _session(port: int, client_id: str) -> mqtt.Client:
    """A connected MQTT 5 client resuming (or creating) a persistent session."""
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600
    c.connect("127.0.0.1", port, clean_start=False, properties=props)
    return c


def test_start_stop_restart_keeps_port_and_queued_messages(root: Path) -> None:
    broker = LocalMosquitto(root)
    assert not broker.running
    url = broker.start()
    try:
        assert broker.running
        assert url == f"mqtt://127.0.0.1:{broker.port}" == broker.url
        assert (root / "port").read_text().strip() == str(broker.port)
        config = broker.config.read_text()
        for line in (
            f"listener {broker.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {root}/",
            "max_queued_messages 0",
            f"log_dest file {root}/mosquitto.log",
        ):
            assert line in config.splitlines()
        if AS_ROOT:
            assert broker.user == ("mosquitto" if "twingraph-mqtt-" in str(root) else "root")

        # A persistent session with a QoS 1 subscription, then offline.
        subscribed = threading.Event()
        sub = _session(broker.port, "broker-test")
        sub.on_subscribe = lambda *_: subscribed.set()
        sub.loop_start()
        sub.subscribe("t/#", qos=1)
        assert subscribed.wait(5)
        sub.disconnect()
        sub.loop_stop()

        n = 1500  # above mosquitto's default max_queued_messages (1000)
        pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        pub.connect("127.0.0.1", broker.port)
        pub.loop_start()
        infos = [pub.publish("t/x", str(i), qos=1) for i in range(n)]
        for info in infos:
            info.wait_for_publish(5)
        pub.disconnect()
        pub.loop_stop()

        broker.stop()
        assert not broker.running
        assert (root / "mosquitto.db").is_file()  # saved on SIGTERM
        assert broker.start() == url  # the remembered port
        assert broker.running

        got: list[int] = []
        done = threading.Event()

        def on_message(_c: mqtt.Client, _u: object, m: mqtt.MQTTMessage) -> None:
            got.append(int(m.payload))
            if len(got) == n:
                done.set()

        sub = _session(broker.port, "broker-test")
        sub.on_message = on_message
        sub.loop_start()
        try:
            assert done.wait(10), f"only {len(got)} of {n} queued messages redelivered"
        finally:
            sub.disconnect()
            sub.loop_stop()
        assert got == list(range(n))
    finally:
        broker.stop()
    assert not broker.running
    broker.stop()  # idempotent


def test_a_second_manager_reuses_the_running_broker(root: Path) -> None:
    first = LocalMosquitto(root)
    url = first.start()
    try:
        pid = (root / "mosquitto.pid").read_text().strip()
        second = LocalMosquitto(root, port=1)  # a running broker wins over a requested port
        assert second.running
        assert second.start() == url
        assert (root / "mosquitto.pid").read_text().strip() == pid
        second.stop()
        assert not first.running
    finally:
        first.stop()


def test_a_requested_port_is_used_and_remembered(tmp_path: Path) -> None:
    try:
        find_mosquitto()
    except UnavailableError as exc:
        pytest.skip(exc.detail)
    from app.telemetry.ports import free_port

    port = free_port()
    broker = LocalMosquitto(tmp_path / "b", port=port)
    try:
        assert broker.start() == f"mqtt://127.0.0.1:{port}"
        broker.stop()
        assert LocalMosquitto(tmp_path / "b").start() == f"mqtt://127.0.0.1:{port}"
    finally:
        broker.stop()


def test_a_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    broker = LocalMosquitto(tmp_path / "b", search_path=str(empty))
    with pytest.raises(UnavailableError, match="apt-get install mosquitto") as info:
        broker.start()
    assert info.value.code == "mosquitto_not_installed"
    assert not broker.running


def test_a_broker_that_cannot_start_reports_its_log(tmp_path: Path) -> None:
    try:
        find_mosquitto()
    except UnavailableError as exc:
        pytest.skip(exc.detail)
    first = LocalMosquitto(tmp_path / "a")
    first.start()
    try:
        clash = LocalMosquitto(tmp_path / "b", port=first.port)  # port taken
        with pytest.raises(UnavailableError, match="mosquitto") as info:
            clash.start()
        assert info.value.code == "mosquitto_failed"
        assert not clash.running
    finally:
        first.stop()
