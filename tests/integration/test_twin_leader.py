"""Twin leadership across real server processes: two `twingraph serve` on one PostgreSQL
database, one `oxigraph serve` and one Mosquitto (the scale-out deployment), a simulated
MQTT device, and failovers by killing the leader's lock session, SIGKILL and SIGSTOP.

Only the leader connects the device channel and the MQTT telemetry ingest (the broker's
log shows one session for each client id at a time), sweeps and syncs readings to point
twins; either process serves the HTTP API, and what is queued through a follower, or
while nobody leads, reaches the device; readings published while nobody leads are stored
once the next leader resumes the ingest's session.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from pyoxigraph import RdfFormat

from app.domain.telemetry import Reading
from app.errors import UnavailableError
from app.events.model import Event, EventFilter
from app.graph.models import ModelValidator
from app.platform import Platform, open_platform
from app.security.tokens import Scope, TokenStore
from app.settings import Settings
from app.telemetry.broker import LocalMosquitto, find_mosquitto
from app.telemetry.mqtt_ingest import parse_url
from app.telemetry.ports import free_port
from app.twins.leader import APPLICATION_NAME, LEADER_LOCK_KEY
from app.twins.model import POINT_VALUE
from app.twins.runtime import RuntimeOptions, TwinRuntime
from app.twins.service import TwinService
from tests.conftest import REPO, PgServer
from tests.integration.test_twins import twin_model
from tests.twin_device import Device

CHANNEL_ID = "twingraph-twins-leader-test"
INGEST_ID = "twingraph-ingest-leader-test"


def eventually(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what or check}"
        time.sleep(0.05)
    return result


@dataclass
class Server:
    """One `twingraph serve` process with its own data dir (tokens) and port."""

    name: str
    proc: subprocess.Popen[bytes]
    url: str
    token: str
    log: Path

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def twins_health(self) -> dict[str, Any] | None:
        try:
            r = httpx.get(self.url + "/health", timeout=2)
        except httpx.HTTPError:
            return None
        body: dict[str, Any] | None = r.json().get("twins") if r.status_code == 200 else None
        return body

    def leads(self) -> bool:
        health = self.twins_health()
        return bool(health and health["leader"])

    def command(self, twin: str, name: str) -> int:
        r = httpx.post(
            f"{self.url}/twins/{twin}/commands",
            json={"name": name, "ttl": 60},
            headers=self.auth,
            timeout=10,
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    def get(self, path: str) -> Any:
        r = httpx.get(self.url + path, headers=self.auth, timeout=10)
        assert r.status_code == 200, r.text
        return r.json()

    def signal(self, sig: signal.Signals) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


class Cluster:
    """The shared broker, graph store and database; an admin platform in the test process
    (no twin services: it only writes the model, twins and plain database work)."""

    def __init__(self, broker: LocalMosquitto, admin: Platform, root: Path) -> None:
        self.broker = broker
        self.admin = admin
        self.root = root
        self.name = f"l{uuid.uuid4().hex[:8]}"
        self.setpoint_ts = uuid.uuid4()
        self.sensor_ts = uuid.uuid4()
        admin.models.ingest(
            graph=f"urn:twingraph:model:twin-leader-{self.name}",
            data=twin_model(self.name, str(self.setpoint_ts), str(self.sensor_ts)).encode(),
            fmt=RdfFormat.TURTLE,
        )
        vav, self.vav_secret = self.twins.create(entity=self.iri("vav"))
        self.vav_twin = vav.id
        self.point_twin = self.twins.create(entity=self.iri("sp"))[0].id  # a writable point

    @property
    def twins(self) -> TwinService:
        assert self.admin.twins is not None
        return self.admin.twins

    def iri(self, part: str) -> str:
        return f"urn:ex:{self.name}-{part}"

    def spawn(self, name: str) -> Server:
        data = self.root / f"{name}-{uuid.uuid4().hex[:6]}"
        data.mkdir()
        token = TokenStore(data / "tokens.sqlite3").create(Scope.WRITE, label=name)
        port = free_port()
        settings = self.admin.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("TWINGRAPH_")}
        env |= {
            "TWINGRAPH_GRAPH_URL": settings.graph_url or "",
            "TWINGRAPH_DATABASE_URL": settings.database_url or "",
            "TWINGRAPH_MQTT_URL": self.broker.url,
            "TWINGRAPH_MQTT_CLIENT_ID": INGEST_ID,
            "TWINGRAPH_TWINS_MQTT_CLIENT_ID": CHANNEL_ID,
            "TWINGRAPH_TWINS_LEADER_RETRY_S": "0.2",
            "TWINGRAPH_TWINS_SWEEP_INTERVAL_S": "0.5",
        }
        log = data / "serve.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
                cwd=REPO,
                env={**env, "TWINGRAPH_DATA_DIR": str(data)},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return Server(name, proc, f"http://127.0.0.1:{port}", token, log)

    def ready(self, *servers: Server) -> None:
        for server in servers:
            eventually(
                lambda s=server: s.proc.poll() is not None or s.twins_health() is not None,  # type: ignore[misc]
                90,
                f"{server.name} to start",
            )
            assert server.proc.poll() is None, server.log.read_text()[-3000:]

    def broker_log(self) -> str:
        return self.broker.log_file.read_text(errors="replace")

    def channel_sessions(self) -> int:
        """Connects of the device channel's client id, as the broker logged them."""
        return self.broker_log().count(f" as {CHANNEL_ID} ")

    def ingest_sessions(self) -> int:
        """Connects of the MQTT telemetry ingest's client id."""
        return self.broker_log().count(f" as {INGEST_ID} ")

    def terminate_lock_session(self) -> int:
        """Kill the leader's lock session from the database side; its backend pid."""
        with psycopg.connect(self.admin.settings.database_url or "", autocommit=True) as conn:
            row = conn.execute(
                "SELECT a.pid, pg_terminate_backend(a.pid) FROM pg_stat_activity a "
                "JOIN pg_locks l ON l.pid = a.pid AND l.locktype = 'advisory' AND l.granted "
                "AND l.objid = %s AND l.database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database()) WHERE a.application_name = %s",
                (LEADER_LOCK_KEY, APPLICATION_NAME),
            ).fetchone()
        assert row is not None and row[1], "no leader lock session"
        return int(row[0])


@pytest.fixture(scope="module")
def cluster(
    pg_server: PgServer,
    oxigraph_server: str,
    validator: ModelValidator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    try:
        find_mosquitto()
    except UnavailableError as exc:
        pytest.skip(exc.detail)
    root = tmp_path_factory.mktemp("twin-leader")
    broker = LocalMosquitto(root / "broker")
    broker.start()
    settings = Settings(
        data_dir=root / "admin",
        graph_url=oxigraph_server,
        database_url=pg_server.database("twin_leader"),
    )
    admin = open_platform(settings, validator=validator)
    try:
        yield Cluster(broker, admin, root)
    finally:
        admin.close()
        broker.stop()


@dataclass
class Pair:
    a: Server
    b: Server
    #: The broker's count of device channel connects before the pair started.
    sessions_before: int
    #: ... and of MQTT ingest connects.
    ingest_sessions_before: int

    def roles(self) -> tuple[Server, Server]:
        """(leader, follower), once exactly one of the two leads."""
        eventually(lambda: self.a.leads() != self.b.leads(), what="exactly one leader")
        return (self.a, self.b) if self.a.leads() else (self.b, self.a)


@pytest.fixture(scope="module")
def pair(cluster: Cluster) -> Iterator[Pair]:
    """Two server processes started together (module-wide: each start costs seconds)."""
    sessions, ingest_sessions = cluster.channel_sessions(), cluster.ingest_sessions()
    a, b = cluster.spawn("a"), cluster.spawn("b")
    try:
        cluster.ready(a, b)
        yield Pair(a, b, sessions, ingest_sessions)
    finally:
        a.stop()
        b.stop()


def _service(cluster: Cluster) -> TwinService:
    """A twin service of its own (as another process would have) on the cluster's database."""
    twins = cluster.twins
    return TwinService(
        pool=twins.pool,
        bus=twins.bus,
        entities=twins.entities,
        points=twins.points,
        sparql=twins.sparql,
        telemetry=twins.telemetry,
    )


def _command_state(cluster: Cluster, twin: str, cid: int) -> str:
    return cluster.twins.commands.get(twin, cid).state.value


def _reported(cluster: Cluster) -> Any:
    return cluster.twins.get(cluster.point_twin).reported.get(POINT_VALUE)


def test_runtimes_in_one_process_share_the_work_the_same_way(
    cluster: Cluster, pg_server: PgServer
) -> None:
    """Two runtimes (two twin services) in this process, contending on a lock database of
    their own: the leader's worker applies readings and its channel connects, the follower
    holds no term, and stopping the leader hands over within a retry. A service each led
    (``lead``, as the MQTT ingest is) runs in the leader only, and moves with the term."""
    admin = cluster.admin
    assert admin.events is not None and admin.telemetry is not None

    def service() -> TwinService:
        return _service(cluster)

    options = RuntimeOptions(
        mqtt_url=cluster.broker.url,
        client_id=f"{CHANNEL_ID}-in-process",
        dsn=pg_server.database("twin_leader_in_process"),
        leader_retry_s=0.1,
    )
    first, second = TwinRuntime(service(), admin.events, options), None
    led: list[str] = []

    def probe(runtime: TwinRuntime, name: str) -> None:
        runtime.lead(
            "probe",
            lambda: led.append(f"{name} started"),
            lambda: led.append(f"{name} stopped"),
            state=lambda: f"{name} up",
        )

    first.start()
    try:
        assert first.leader and first.channel is not None  # elected within start()
        probe(first, "first")
        assert led == ["first started"]  # leading: started at once
        second = TwinRuntime(service(), admin.events, options)
        second.start()
        probe(second, "second")
        assert not second.leader and second.channel is None
        assert second.status() == {
            "leader": False,
            "device_channel": None,
            "readings_dropped": 0,
            "probe": None,
        }
        assert first.status()["probe"] == "first up"
        assert first.channel.wait_connected(10)
        assert first.status()["device_channel"] == "connected"
        t = datetime.now(UTC) + timedelta(days=1)
        admin.telemetry.write(readings=[Reading(cluster.setpoint_ts, t, 55.5)])
        eventually(lambda: _reported(cluster) == 55.5, what="reading applied")
        term = first._term
        assert term is not None
        # The sync thread counts a pass just after applying it: wait for the count too.
        eventually(lambda: term.sync.applied >= 1 and term.sync.passes >= 1, what="sync counts")
        first.stop()
        assert led == ["first started", "first stopped"]
        eventually(lambda: second.leader, 2, "takeover")  # released on stop
        eventually(lambda: led == ["first started", "first stopped", "second started"])
        assert second.status()["probe"] == "second up"
        eventually(lambda: second.channel is not None and second.channel.connected)
        admin.telemetry.write(
            readings=[Reading(cluster.setpoint_ts, t + timedelta(seconds=1), 56.5)]
        )
        eventually(lambda: _reported(cluster) == 56.5, what="reading applied by the new leader")
    finally:
        first.stop()
        if second is not None:
            second.stop()


def test_one_boot_gets_one_full_delivery_however_it_is_heard(
    cluster: Cluster, pg_server: PgServer
) -> None:
    """A device's boot (``device.online``) asks for a full delivery: its desired state and
    every command it has not acknowledged. The runtime hears the boot from the emitting
    thread and through the bus, in either order, and a connect of the channel (a new term,
    a broker blip) asks the same for every online twin. Under load these overlapped and the
    device got each waiting command twice. Forced here for one boot: the bus, held ahead of
    the runtime's callback, first reports a channel connect and waits for that pass to
    deliver; then the runtime hears the bus, and only then the emitter (the channel's
    thread, held by a listener ahead of the runtime's: the device's acks wait behind it, so
    its commands stay unacknowledged all along)."""
    admin = cluster.admin
    assert admin.events is not None
    name = f"boot{uuid.uuid4().hex[:6]}"
    admin.models.ingest(
        graph=f"urn:twingraph:model:twin-leader-{name}",
        data=twin_model(name, str(uuid.uuid4()), str(uuid.uuid4())).encode(),
        fmt=RdfFormat.TURTLE,
    )
    twins = _service(cluster)
    twin, secret = twins.create(entity=f"urn:ex:{name}-vav")
    queued = [twins.commands.send(twin.id, name=n, ttl_s=60)[0].id for n in ("a", "b", "c")]
    runtime = TwinRuntime(
        twins,
        admin.events,
        RuntimeOptions(
            mqtt_url=cluster.broker.url,
            client_id=f"{CHANNEL_ID}-boot",
            dsn=pg_server.database("twin_leader_boot"),
            leader_retry_s=0.1,
        ),
    )
    received: list[int] = []
    heard: list[str] = []
    runtime_heard_bus = threading.Event()

    def ours(event: Event) -> bool:
        return event.type == "device.online" and event.data.get("twinId") == twin.id

    def delivered() -> bool:
        return len(received) >= len(queued)

    def connect_first(event: Event) -> None:  # the bus, before the runtime's callback
        if ours(event) and runtime.channel is not None and runtime.channel.on_connected:
            heard.append("connect")
            runtime.channel.on_connected()
            eventually(delivered, 10, "the connect's delivery")
            heard.append("bus")

    def after_runtime(event: Event) -> None:  # the bus, after the runtime's callback
        if ours(event):
            runtime_heard_bus.set()

    def emitter_last(event: Event) -> None:  # the channel's thread, before the runtime
        if ours(event):
            runtime_heard_bus.wait(10)
            heard.append("emitter")

    undo = [admin.events.on_event(connect_first)]
    twins.listeners.append(emitter_last)
    runtime.start()
    undo.append(admin.events.on_event(after_runtime))
    device = Device(
        cluster.broker.url,
        {twin.id: secret},
        record=lambda e: received.append(e["id"]) if e["event"] == "command" else None,
        heartbeat_s=5,
    )
    try:
        assert runtime.channel is not None and runtime.channel.wait_connected(10)
        device.start()
        for cid in queued:
            eventually(lambda c=cid: _command_state(cluster, twin.id, c) == "succeeded", 15)  # type: ignore[misc]
        time.sleep(0.3)  # a second delivery, had there been one, would be through
        assert heard == ["connect", "bus", "emitter"]
        assert received == queued  # each once, in order
    finally:
        device.stop()
        for step in undo:
            step()
        runtime.stop()


def test_readings_reach_point_twins_through_the_leader_only(cluster: Cluster, pair: Pair) -> None:
    leader, follower = pair.roles()
    t = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)

    def write(value: float, at: datetime) -> None:
        reading = {"point": str(cluster.setpoint_ts), "time": at.isoformat(), "value": value}
        r = httpx.post(
            follower.url + "/telemetry",
            json={"readings": [reading]},
            headers=follower.auth,
            timeout=10,
        )
        assert r.status_code == 200, r.text

    def reported() -> Any:
        props = follower.get(f"/twins/{cluster.point_twin}")["reported"]
        return props.get(POINT_VALUE, {}).get("value")

    write(20.0, t)
    eventually(lambda: reported() == 20.0, what="first reading applied")
    # The leader frozen: readings written through the follower are not applied by it.
    leader.signal(signal.SIGSTOP)
    try:
        for i in range(20):
            write(21.0 + i, t + timedelta(seconds=1 + i))
        time.sleep(0.8)
        assert reported() == 20.0
    finally:
        leader.signal(signal.SIGCONT)
    eventually(lambda: reported() == 40.0, what="the leader catches up")
    assert cluster.admin.events is not None
    events = cluster.admin.events.fetch(
        filter=EventFilter.of(types=["reported"], twins=[cluster.iri("sp")]),
        since=datetime.now(UTC) - timedelta(minutes=5),
    )
    values = [e.data["props"][POINT_VALUE] for e in events if e.data["source"] == "telemetry"]
    values = values[values.index(20.0) :]
    # Each applied at most once, in time order; the burst coalesced into fewer passes.
    assert values[-1] == 40.0 and values == sorted(set(values))
    print(f"\n20 readings written while the leader was frozen: {len(values) - 1} applied")
    assert (leader.twins_health() or {}).get("readings_dropped") == 0


def test_one_leader_delivers_for_all_and_a_follower_takes_over(
    cluster: Cluster, pair: Pair
) -> None:
    twin = cluster.vav_twin
    leader, follower = pair.roles()
    eventually(
        lambda: (leader.twins_health() or {}).get("device_channel") == "connected",
        what="the leader's device channel",
    )
    time.sleep(0.5)  # the follower keeps retrying: still exactly one leader
    assert leader.leads() and not follower.leads()
    assert follower.twins_health() == {
        "leader": False,
        "device_channel": None,
        "readings_dropped": 0,
        "mqtt_ingest": None,
    }
    # One session of each client id since the pair started: the follower never connected
    # the channel or the ingest (had it, the two would have taken the session from each
    # other), and the leader's ingest is up.
    assert cluster.channel_sessions() == pair.sessions_before + 1
    assert cluster.ingest_sessions() == pair.ingest_sessions_before + 1
    assert (leader.twins_health() or {}).get("mqtt_ingest") == "connected"

    received: list[int] = []
    device = Device(
        cluster.broker.url,
        {twin: cluster.vav_secret},
        record=lambda e: received.append(e["id"]) if e["event"] == "command" else None,
        heartbeat_s=1.0,
    )
    device.start()
    try:
        assert device.ready.wait(10)
        eventually(lambda: follower.get(f"/twins/{twin}")["online"], what="device online")
        # Queued through the follower's HTTP API, delivered by the leader over MQTT.
        first = follower.command(twin, "calibrate")
        eventually(lambda: _command_state(cluster, twin, first) == "succeeded", what="first")
        assert received == [first]

        # The leader's lock session dies (a database failover, a network cut): it steps
        # down, the follower takes over within a few retries and delivers from then on.
        cluster.terminate_lock_session()
        t0 = time.monotonic()
        eventually(follower.leads, what="takeover")
        takeover = time.monotonic() - t0
        eventually(lambda: not leader.leads(), what="the old leader steps down")
        eventually(
            lambda: (follower.twins_health() or {}).get("device_channel") == "connected",
            what="the new leader's device channel",
        )
        eventually(
            lambda: (follower.twins_health() or {}).get("mqtt_ingest") == "connected",
            what="the new leader's MQTT ingest",
        )
        print(f"\ntakeover after the leader's lock session was killed: {takeover * 1000:.0f} ms")
        assert (leader.twins_health() or {}).get("device_channel") is None
        assert (leader.twins_health() or {}).get("mqtt_ingest") is None
        assert cluster.channel_sessions() == pair.sessions_before + 2
        assert cluster.ingest_sessions() == pair.ingest_sessions_before + 2
        leader, follower = follower, leader
        second = follower.command(twin, "open")
        eventually(lambda: _command_state(cluster, twin, second) == "succeeded", what="second")
        assert received == [first, second]
    finally:
        device.stop()


class Publisher:
    """Readings of one point over MQTT (QoS 1), one a message, at a steady pace."""

    def __init__(self, url: str, point: uuid.UUID) -> None:
        address = parse_url(url)
        self.point = point
        self.start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
        self.sent = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.connect(address.host, address.port)
        self.client.loop_start()

    def publish(self, count: int, pace_s: float = 0.005) -> None:
        infos = []
        for _ in range(count):
            at = self.start + timedelta(milliseconds=10 * self.sent)
            body = {"time": at.isoformat(), "value": float(self.sent)}
            infos.append(
                self.client.publish(
                    f"twingraph/leader-test/points/{self.point}", json.dumps(body), qos=1
                )
            )
            self.sent += 1
            time.sleep(pace_s)
        for info in infos:  # the broker has each one (PUBACK): from here on it is its job
            info.wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _stored(cluster: Cluster, point: uuid.UUID, since: datetime) -> tuple[int, int]:
    """(rows, distinct times) of ``point`` from ``since`` on, straight from PostgreSQL."""
    with psycopg.connect(cluster.admin.settings.database_url or "") as conn:
        row = conn.execute(
            "SELECT count(*), count(DISTINCT time) FROM readings WHERE point = %s AND time >= %s",
            (point, since),
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def test_a_killed_leader_loses_nothing_the_next_one_resumes_its_sessions(
    cluster: Cluster, pair: Pair
) -> None:
    """Nobody leads: the follower frozen, the leader killed in the middle of a stream of
    readings over MQTT (received, perhaps stored, not yet acknowledged). A command queued
    meanwhile waits in PostgreSQL and readings published meanwhile wait at the broker in the
    ingest's session; the follower, thawed, takes over, resumes the channel's and the
    ingest's sessions, delivers the command and stores every reading, each once."""
    twin = cluster.vav_twin
    leader, follower = pair.roles()
    eventually(
        lambda: (leader.twins_health() or {}).get("mqtt_ingest") == "connected",
        what="the leader's MQTT ingest",
    )
    assert (follower.twins_health() or {}).get("mqtt_ingest") is None
    log_from = len(cluster.broker_log())
    channel_sessions, ingest_sessions = cluster.channel_sessions(), cluster.ingest_sessions()
    received: list[int] = []
    device = Device(
        cluster.broker.url,
        {twin: cluster.vav_secret},
        record=lambda e: received.append(e["id"]) if e["event"] == "command" else None,
        heartbeat_s=1.0,
    )
    device.start()
    pub = Publisher(cluster.broker.url, cluster.sensor_ts)
    try:
        assert device.ready.wait(10)
        eventually(lambda: follower.get(f"/twins/{twin}")["online"], what="device online")
        pub.publish(150)  # stored by the leader as they come
        eventually(lambda: _stored(cluster, pub.point, pub.start)[0] >= 50, what="ingest")
        follower.signal(signal.SIGSTOP)
        try:
            pub.publish(50, pace_s=0)
            leader.signal(signal.SIGKILL)
            leader.proc.wait(10)
            command = cluster.twins.commands.send(twin, name="close", ttl_s=60)[0].id
            time.sleep(0.3)  # a commit the leader had sent, if any, is through
            stored_at_kill = _stored(cluster, pub.point, pub.start)[0]
            pub.publish(200)  # queued by the broker in the ingest's session
            time.sleep(0.3)
            assert _stored(cluster, pub.point, pub.start)[0] == stored_at_kill < pub.sent
            assert _command_state(cluster, twin, command) == "queued"
        finally:
            follower.signal(signal.SIGCONT)
        t0 = time.monotonic()
        eventually(
            lambda: _stored(cluster, pub.point, pub.start)[0] == pub.sent,
            20,
            "every reading stored by the new leader",
        )
        caught_up = time.monotonic() - t0
        eventually(lambda: _command_state(cluster, twin, command) == "succeeded", what="command")
        assert follower.leads()
        assert received == [command]
    finally:
        pub.close()
        device.stop()
    rows, times = _stored(cluster, pub.point, pub.start)
    assert rows == times == pub.sent == 400  # none lost, none twice
    # One new session of each client id (the new leader's), and never two connections at
    # once: the broker took no session over from a live connection.
    log = cluster.broker_log()[log_from:]
    assert (cluster.channel_sessions(), cluster.ingest_sessions()) == (
        channel_sessions + 1,
        ingest_sessions + 1,
    )
    assert " already connected" not in log
    print(
        f"\n{pub.sent - stored_at_kill} readings waiting at the broker or unacknowledged "
        f"when the leader was killed: all stored {caught_up * 1000:.0f} ms after the "
        "follower was thawed"
    )
