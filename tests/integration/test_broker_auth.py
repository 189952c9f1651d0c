"""Broker authentication and ACLs in a real mosquitto: logins, what each user may read and
write, reloads after a secret is rotated, the platform's own managed broker, and the
files ``twingraph broker`` exports for an external one."""

from __future__ import annotations

import dataclasses
import os
import queue
import stat
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from app.errors import InvalidInputError, NotFoundError, UnavailableError
from app.platform import Platform
from app.settings import Settings
from app.telemetry.broker import LocalMosquitto, find_mosquitto, public_url
from app.telemetry.db import connect_pool
from app.telemetry.live import start_broker_auth_files, start_local_broker
from app.telemetry.mosquitto_passwd import check_password, hash_password
from app.telemetry.mqtt_ingest import parse_url
from app.twins.broker_auth import SERVICE_USER, BrokerUsers, render_acl, render_passwords
from tests.conftest import PgServer, run_cli
from tests.integration.test_mqtt_ingest import eventually
from tests.integration.test_twins import Building

SERVICE_PASSWORD = "service-" + uuid.uuid4().hex
POINT = "7a3f1c52-0d1e-4c7e-9a51-2f0e8c1b9d40"


@pytest.fixture(scope="module")
def mosquitto() -> None:
    try:
        find_mosquitto()
    except UnavailableError as exc:
        pytest.skip(exc.detail)


class Peer:
    """A paho MQTT 5 client logged in as ``user`` (anonymous when None)."""

    def __init__(self, port: int, user: str | None = None, password: str | None = None) -> None:
        self.messages: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        if user is not None:
            self.c.username_pw_set(user, password)
        self.answered = threading.Event()
        self.reason: Any = None
        self.subscribed = threading.Event()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.c.on_subscribe = lambda *_: self.subscribed.set()
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()
        assert self.answered.wait(5), "no CONNACK"

    def _on_connect(self, client: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            client.disconnect()  # or paho's loop would try again
        self.reason = reason
        self.answered.set()

    @property
    def accepted(self) -> bool:
        return not self.reason.is_failure

    def subscribe(self, *filters: str) -> None:
        self.subscribed.clear()
        self.c.subscribe([(f, 1) for f in filters])
        assert self.subscribed.wait(5)

    def publish(self, topic: str, payload: str) -> None:
        self.c.publish(topic, payload, qos=1).wait_for_publish(5)

    def received(self, until: str, timeout: float = 5.0) -> list[str]:
        """Topics received up to and including the message with payload ``until`` (sent
        last by the test, so anything denied before it would have come before it)."""
        topics: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            topic, payload = self.messages.get(timeout=max(0.01, deadline - time.monotonic()))
            topics.append(topic)
            if payload.decode() == until:
                time.sleep(0.1)  # and a moment for anything out of order
                while not self.messages.empty():
                    topics.append(self.messages.get()[0])
                return topics

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


def publish_once(port: int, user: str, password: str, topic: str, payload: str) -> None:
    """Publish at QoS 1 on a connection of its own: mosquitto 2.0.11 drops an MQTT 5
    client right after refusing its publish (PUBACK "not authorized")."""
    peer = Peer(port, user, password)
    try:
        peer.c.publish(topic, payload, qos=1).wait_for_publish(5)
    finally:
        peer.close()


def logs_in(port: int, user: str | None, password: str | None = None) -> bool:
    peer = Peer(port, user, password)
    peer.close()
    return bool(peer.accepted)


@pytest.fixture
def broker(mosquitto: None, tmp_path: Path) -> Iterator[LocalMosquitto]:
    """A broker with auth: the platform, a gateway, devices ``dev-a``, ``dev-b``, ``ahu:1``."""
    b = LocalMosquitto(tmp_path / "mosquitto", auth=True)
    devices = {t: hash_password(f"secret-{t}") for t in ("dev-a", "dev-b", "ahu:1")}
    gateways = {"site-a": hash_password("gw-secret")}
    b.write_auth(
        render_passwords(
            service=(SERVICE_USER, hash_password(SERVICE_PASSWORD)),
            gateways=gateways,
            devices=devices,
        ),
        render_acl(service_user=SERVICE_USER, gateways=gateways, devices=devices),
    )
    b.start()
    yield b
    b.stop()


def test_python_hashes_match_mosquitto_passwd(mosquitto: None, tmp_path: Path) -> None:
    """The real ``mosquitto_passwd`` writes what we compute (salt aside)."""
    tool = "mosquitto_passwd"
    try:
        subprocess.run([tool, "-c", "-b", str(tmp_path / "pw"), "u", "tgd_x"], check=True)
    except FileNotFoundError:
        pytest.skip("mosquitto_passwd is not installed")
    line = (tmp_path / "pw").read_text().strip()
    name, encoded = line.split(":", 1)
    assert name == "u" and encoded.startswith("$7$101$")
    assert check_password("tgd_x", encoded)
    assert not check_password("tgd_y", encoded)


def test_logins_are_checked_and_anonymous_clients_refused(broker: LocalMosquitto) -> None:
    config = broker.config.read_text().splitlines()
    assert "allow_anonymous false" in config
    assert stat.S_IMODE(broker.password_file.stat().st_mode) == 0o600
    port = broker.port
    assert not logs_in(port, None)
    assert logs_in(port, SERVICE_USER, SERVICE_PASSWORD)
    assert not logs_in(port, SERVICE_USER, "wrong")
    assert logs_in(port, "dev-a", "secret-dev-a")
    assert not logs_in(port, "dev-a", "secret-dev-b")
    assert logs_in(port, "ahu%3A1", "secret-ahu:1")
    assert logs_in(port, "_gw.site-a", "gw-secret")
    assert not logs_in(port, "site-a", "gw-secret")


def test_a_device_reads_and_writes_only_its_own_twins_topics(broker: LocalMosquitto) -> None:
    platform = Peer(broker.port, SERVICE_USER, SERVICE_PASSWORD)
    device = Peer(broker.port, "dev-a", "secret-dev-a")
    try:
        # Reading: its own desired state and commands, nothing of dev-b's or the platform's.
        device.subscribe(
            "twingraph/devices/dev-a/desired",
            "twingraph/devices/dev-a/commands",
            "twingraph/devices/dev-b/desired",
            "twingraph/events/#",
            "twingraph/#",
        )
        platform.publish("twingraph/devices/dev-b/desired", "b-desired")
        platform.publish("twingraph/devices/dev-b/commands", "b-command")
        platform.publish("twingraph/events/desired/set", "event")
        platform.publish(f"twingraph/site/points/{POINT}", "21.5")
        platform.publish("twingraph/devices/dev-a/commands", "a-command")
        platform.publish("twingraph/devices/dev-a/desired", "a-desired")
        got = device.received(until="a-desired")
        assert set(got) == {"twingraph/devices/dev-a/commands", "twingraph/devices/dev-a/desired"}

        # Writing: its own reported state, not dev-b's, not readings, not events.
        platform.subscribe("twingraph/#")
        for topic in (
            "twingraph/devices/dev-b/reported",
            "twingraph/devices/dev-b/heartbeat",
            "twingraph/devices/dev-a/desired",  # its own, but a to-device topic
            f"twingraph/site/points/{POINT}",
            "twingraph/events/desired/set",
            "twingraph/devices/dev-a/heartbeat",
            "twingraph/devices/dev-a/reported",
        ):
            publish_once(broker.port, "dev-a", "secret-dev-a", topic, topic.rsplit("/")[-1])
        got = platform.received(until="reported")
        assert got == ["twingraph/devices/dev-a/heartbeat", "twingraph/devices/dev-a/reported"]
    finally:
        device.close()
        platform.close()


def test_a_twin_id_with_a_colon_logs_in_percent_encoded(broker: LocalMosquitto) -> None:
    platform = Peer(broker.port, SERVICE_USER, SERVICE_PASSWORD)
    device = Peer(broker.port, "ahu%3A1", "secret-ahu:1")
    try:
        device.subscribe("twingraph/devices/+/desired")
        platform.subscribe("twingraph/devices/+/reported")
        platform.publish("twingraph/devices/dev-a/desired", "other")
        platform.publish("twingraph/devices/ahu:1/desired", "own")
        assert device.received(until="own") == ["twingraph/devices/ahu:1/desired"]
        for topic in ("twingraph/devices/dev-a/reported", "twingraph/devices/ahu:1/reported"):
            publish_once(broker.port, "ahu%3A1", "secret-ahu:1", topic, topic.split("/")[2])
        assert platform.received(until="ahu:1") == ["twingraph/devices/ahu:1/reported"]
    finally:
        device.close()
        platform.close()


def test_a_gateway_publishes_readings_and_reads_rejections_only(broker: LocalMosquitto) -> None:
    platform = Peer(broker.port, SERVICE_USER, SERVICE_PASSWORD)
    gateway = Peer(broker.port, "_gw.site-a", "gw-secret")
    try:
        gateway.subscribe("twingraph/#")
        platform.publish("twingraph/devices/dev-a/desired", "desired")
        platform.publish("twingraph/events/twin/registered", "event")
        platform.publish("twingraph/site-a/errors", "rejection")
        assert gateway.received(until="rejection") == ["twingraph/site-a/errors"]
        platform.subscribe("twingraph/#")
        for topic in (
            "twingraph/devices/dev-a/reported",
            "twingraph/site-a/errors",
            f"twingraph/site-a/points/{POINT}",
            "twingraph/site-a/telemetry",
        ):
            publish_once(broker.port, "_gw.site-a", "gw-secret", topic, topic.rsplit("/")[-1])
        got = platform.received(until="telemetry")
        assert got == [f"twingraph/site-a/points/{POINT}", "twingraph/site-a/telemetry"]
    finally:
        gateway.close()
        platform.close()


def test_a_running_broker_without_auth_is_restarted_with_it(
    mosquitto: None, tmp_path: Path
) -> None:
    """An older `make run` left an open broker running: the platform must not reuse it."""
    open_broker = LocalMosquitto(tmp_path / "mosquitto")
    open_broker.start()
    try:
        assert logs_in(open_broker.port, None)
        secured = LocalMosquitto(tmp_path / "mosquitto", auth=True)
        secured.start()
        assert secured.launched and secured.port == open_broker.port
        assert not logs_in(secured.port, None)
        again = LocalMosquitto(tmp_path / "mosquitto", auth=True)
        again.start()
        assert not again.launched  # same configuration: reused
    finally:
        open_broker.stop()


@pytest.mark.parametrize("store_mode", ["embedded"], indirect=True)
def test_the_managed_broker_follows_twin_secrets(
    mosquitto: None, platform: Platform, tmp_path: Path
) -> None:
    """``make run``'s broker: the platform logs in as its service user; a twin's device can
    log in as soon as the twin exists, with the new secret only once rotated, and not at
    all once deleted (the files are rewritten and mosquitto reloads them)."""
    assert platform.twins is not None
    building = Building(platform, f"b{uuid.uuid4().hex[:8]}")
    # The session's platform, with its own data dir and closers (the rest is shared).
    settings = Settings(data_dir=tmp_path, database_url=platform.settings.database_url)
    local = dataclasses.replace(platform, settings=settings, _closers=[])
    url = start_local_broker(local)
    try:
        address = parse_url(url)
        assert address.username == SERVICE_USER and address.password
        assert public_url(url) == f"mqtt://127.0.0.1:{address.port}"
        secret_file = settings.broker_dir / "service-password"
        assert secret_file.read_text().strip() == address.password
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
        assert address.password not in (settings.broker_dir / "passwd").read_text()
        port = address.port
        assert logs_in(port, address.username, address.password)
        assert not logs_in(port, None)

        state, secret = platform.twins.create(entity=building.iri("vav"))
        eventually(lambda: logs_in(port, state.id, secret), timeout=10)

        new_secret = platform.twins.rotate_secret(state.id)
        eventually(lambda: not logs_in(port, state.id, secret), timeout=10)
        assert logs_in(port, state.id, new_secret)

        platform.twins.delete(state.id)
        eventually(lambda: not logs_in(port, state.id, new_secret), timeout=10)

        # A gateway added elsewhere (the CLI) announces nothing: polling finds it.
        assert platform.db is not None
        users = BrokerUsers(platform.db)
        gateway = f"gw-{uuid.uuid4().hex[:6]}"
        password = users.add(gateway, role="gateway")
        try:
            eventually(lambda: logs_in(port, f"_gw.{gateway}", password), timeout=15)
        finally:
            users.remove(gateway)
    finally:
        local.close()
    assert not LocalMosquitto(settings.broker_dir).running


@pytest.mark.parametrize("store_mode", ["embedded"], indirect=True)
def test_the_server_keeps_an_external_brokers_files_current(
    platform: Platform, tmp_path: Path
) -> None:
    """TWINGRAPH_BROKER_AUTH_DIR (docker-compose.yml): the platform's login is the URL's."""
    assert platform.db is not None
    settings = Settings(
        data_dir=tmp_path,
        database_url=platform.settings.database_url,
        mqtt_url="mqtt://_svc:s3cret@mosquitto:1883",
        broker_auth_dir=tmp_path / "auth",
    )
    local = dataclasses.replace(platform, settings=settings, _closers=[])
    start_broker_auth_files(local)
    try:
        passwd = tmp_path / "auth" / "passwd"
        entries = dict(line.split(":", 1) for line in passwd.read_text().splitlines()[1:])
        assert check_password("s3cret", entries["_svc"])
        assert "user _svc" in (tmp_path / "auth" / "acl").read_text().splitlines()
        gateway = f"gw-{uuid.uuid4().hex[:6]}"
        users = BrokerUsers(platform.db)
        users.add(gateway, role="gateway")
        try:
            eventually(lambda: f"_gw.{gateway}:" in passwd.read_text(), timeout=15)
        finally:
            users.remove(gateway)
    finally:
        local.close()


def test_cli_manages_gateways_and_exports_files_an_external_broker_accepts(
    mosquitto: None, pg_server: PgServer, tmp_path: Path
) -> None:
    dsn = pg_server.database("broker_cli")
    env = {
        **os.environ,
        "TWINGRAPH_DATA_DIR": str(tmp_path / "data"),
        "TWINGRAPH_DATABASE_URL": dsn,
        # An external broker: the platform's user is the one in its URL.
        "TWINGRAPH_MQTT_URL": "mqtt://_platform:pl%40tform-pw@127.0.0.1:1883",
    }
    added = run_cli("broker", "user", "add", "site-b", "--role", "gateway", env=env)
    assert added.returncode == 0, added.stderr
    password = added.stdout.strip()
    assert password.startswith("tgg_") and "_gw.site-b" in added.stderr
    again = run_cli("broker", "user", "add", "site-b", env=env)
    assert again.returncode == 1 and "broker_user_exists" in again.stderr

    files = tmp_path / "export"
    files.mkdir()
    for kind, name in (("passwords", "passwd"), ("acl", "acl")):
        done = run_cli("broker", kind, "--output", str(files / name), env=env)
        assert done.returncode == 0, done.stderr
        assert stat.S_IMODE((files / name).stat().st_mode) == 0o600
    passwd, acl = (files / "passwd").read_text(), (files / "acl").read_text()
    assert "pl@tform-pw" not in passwd and password not in passwd
    assert "user _platform" in acl.splitlines()

    broker = LocalMosquitto(tmp_path / "mosquitto", auth=True)
    broker.write_auth(passwd, acl)
    broker.start()
    try:
        assert logs_in(broker.port, "_platform", "pl@tform-pw")
        assert logs_in(broker.port, "_gw.site-b", password)
        assert not logs_in(broker.port, "_gw.site-b", "tgg_wrong")
        assert not logs_in(broker.port, None)
    finally:
        broker.stop()

    pool = connect_pool(dsn, max_size=1)
    try:
        users = BrokerUsers(pool)
        with pytest.raises(InvalidInputError) as bad:
            users.add("site/b", role="gateway")
        assert bad.value.code == "bad_broker_user"
        with pytest.raises(InvalidInputError) as role:
            users.add("site-c", role="admin")
        assert role.value.code == "bad_broker_role"
        users.add("site-c", role="gateway")
        removed = run_cli("broker", "user", "remove", "site-b", env=env)
        assert removed.returncode == 0, removed.stderr
        listed = run_cli("broker", "user", "list", env=env)
        assert listed.returncode == 0, listed.stderr
        assert "_gw.site-c" in listed.stdout and "site-b" not in listed.stdout
        with pytest.raises(NotFoundError):
            users.remove("site-b")
        assert set(users.gateways()) == {"site-c"}
    finally:
        pool.close()
