"""Live twins end to end: a real Mosquitto, PostgreSQL, the app on a real socket, and
simulated devices (``tests/twin_device.py``) as separate processes or in-process clients.

One platform (own data dir and database, the demo building) serves the module; the
restart test closes and reopens it on the same data dir and database.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
import uvicorn
from paho.mqtt.enums import CallbackAPIVersion

from app.errors import UnavailableError
from app.graph.models import ModelValidator
from app.main import create_app
from app.platform import Platform, open_platform
from app.security.tokens import Scope
from app.settings import Settings
from app.telemetry.broker import LocalMosquitto, find_mosquitto
from app.telemetry.ports import free_port
from ingest.demo_building import generate_building
from tests.conftest import PgServer
from tests.twin_device import Device, key_of, seal

REPO = Path(__file__).resolve().parents[2]
DEMO = "urn:twingraph:demo:"
GRAPH = "urn:twingraph:model:twins-live"


def vav(level: int, n: int) -> str:
    return f"{DEMO}bldg/L{level:02d}/vav-{n:02d}"


def eventually(check: Callable[[], Any], timeout: float = 10.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        time.sleep(0.05)


class Live:
    """The platform and its app on a socket; ``restart()`` closes and reopens both."""

    def __init__(self, settings: Settings, validator: ModelValidator) -> None:
        self.settings = settings
        self.validator = validator
        self.platform: Platform | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.url = ""
        self.write = ""
        self.http = httpx.Client(timeout=20)

    def start(self) -> None:
        self.platform = open_platform(self.settings, validator=self.validator)
        if not any(g.kind == "model" for g in self.platform.models.graphs()):
            self.platform.models.ingest_triples(
                graph=GRAPH, triples=generate_building(floors=3, vavs_per_floor=4)
            )
        if not self.write:
            self.write = self.platform.tokens.create(Scope.WRITE, label="twin tests")
        port = free_port()
        self._server = uvicorn.Server(
            uvicorn.Config(
                create_app(platform=self.platform), host="127.0.0.1", port=port, log_level="warning"
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        eventually(lambda: self._server is not None and self._server.started, 20, "uvicorn")
        self.url = f"http://127.0.0.1:{port}"
        assert self.platform.twins is not None and self.platform.twins.runtime is not None
        assert self.platform.twins.runtime.channel.wait_connected(10)

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(20)
        if self.platform is not None:
            self.platform.close()
        self.platform = None

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.write}"}

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(self.url + path, params=params, headers=self.auth)
        assert r.status_code == 200, r.text
        return r.json()

    def send(self, method: str, path: str, body: Any, status: int | None = None) -> Any:
        r = self.http.request(method, self.url + path, json=body, headers=self.auth)
        if status is not None:
            assert r.status_code == status, r.text
        return r.json() if r.content else None

    def twin(self, entity: str, **extra: Any) -> tuple[str, str]:
        """(twin id, device secret) of ``entity``'s twin, created if missing."""
        r = self.http.post(f"{self.url}/twins", json={"entity": entity, **extra}, headers=self.auth)
        if r.status_code == 201:
            return r.json()["twin"]["id"], r.json()["deviceSecret"]
        assert r.json()["code"] == "twin_exists", r.text
        twin_id = self.get(f"/twins/{entity}")["id"]
        return twin_id, self.send("POST", f"/twins/{twin_id}/credentials", None, 200)[
            "deviceSecret"
        ]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMosquitto]:
    try:
        find_mosquitto()
    except UnavailableError as exc:
        pytest.skip(exc.detail)
    b = LocalMosquitto(tmp_path_factory.mktemp("twin-broker"))
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def live(
    broker: LocalMosquitto,
    pg_server: PgServer,
    validator: ModelValidator,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Live]:
    settings = Settings(
        data_dir=tmp_path_factory.mktemp("twins-live"),
        database_url=pg_server.database("twins_live"),
        mqtt_url=broker.url,
        twins_sweep_interval_s=0.2,
        twins_heartbeat_timeout_s=30,
    )
    env = Live(settings, validator)
    env.start()
    yield env
    env.stop()
    env.http.close()


class DeviceProcess:
    def __init__(self, live: Live, twin: str, secret: str, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.twin_device",
                "--url",
                live.settings.mqtt_url or "",
                "--twin",
                twin,
                "--secret",
                secret,
                "--log",
                str(log),
                "--fail",
                "explode",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip() == "ready", self.proc.stderr.read() if self.proc.stderr else line

    def stop(self) -> None:
        self.proc.terminate()
        code = self.proc.wait(10)
        _out, err = self.proc.communicate()
        assert code == 0, err

    def entries(self, event: str) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        lines = self.log.read_text().splitlines()
        return [e for e in map(json.loads, lines) if e["event"] == event]


def _command(live: Live, twin: str, name: str, ttl: float = 60, **body: Any) -> int:
    cmd = live.send("POST", f"/twins/{twin}/commands", {"name": name, "ttl": ttl, **body}, 201)
    assert cmd["state"] == "queued"
    return int(cmd["id"])


def _state(live: Live, twin: str, cid: int) -> str:
    return str(live.get(f"/twins/{twin}/commands/{cid}")["state"])


def test_offline_device_gets_queued_commands_in_order_after_a_platform_restart(
    live: Live, tmp_path: Path
) -> None:
    twin, secret = live.twin(vav(1, 1), schemas={"vav.v1.Airflow": {"type": "number"}})
    device = DeviceProcess(live, twin, secret, tmp_path / "first.jsonl")
    try:
        eventually(lambda: live.get(f"/twins/{twin}")["online"], what="device online")
        live.send("PATCH", f"/twins/{twin}/desired", {"vav.v1.Airflow": 150}, 200)
        eventually(
            lambda: live.get(f"/twins/{twin}")["sync"]["status"] == "synced", what="first sync"
        )
        online_cmd = _command(live, twin, "calibrate")
        eventually(lambda: _state(live, twin, online_cmd) == "succeeded", what="online command")
    finally:
        device.stop()
    eventually(lambda: not live.get(f"/twins/{twin}")["online"], what="device offline")

    # Offline: commands and a new desired value wait in PostgreSQL.
    queued = [
        _command(live, twin, "open", input={"pct": 10}),
        _command(live, twin, "open", input={"pct": 20}),
        _command(live, twin, "explode"),
    ]
    short = _command(live, twin, "flush", ttl=0.3)
    queued.append(_command(live, twin, "close"))
    live.send("PATCH", f"/twins/{twin}/desired", {"vav.v1.Airflow": 90}, 200)
    states = {c["id"]: c["state"] for c in live.get(f"/twins/{twin}/commands")["commands"]}
    assert [states[c] for c in queued] == ["queued"] * 4
    assert live.get(f"/twins/{twin}")["sync"]["properties"]["vav.v1.Airflow"] == "pending"

    live.restart()
    eventually(lambda: _state(live, twin, short) == "expired", what="expiry")

    again = DeviceProcess(live, twin, secret, tmp_path / "second.jsonl")
    try:
        eventually(lambda: _state(live, twin, queued[-1]) == "succeeded", what="queued commands")
        received = [e["id"] for e in again.entries("command")]
        assert received == queued  # in order, each once, and never the expired one
        assert [_state(live, twin, c) for c in queued] == [
            "succeeded",
            "succeeded",
            "failed",
            "succeeded",
        ]
        assert _state(live, twin, short) == "expired"
        # The device kept nothing: it got its whole desired state at boot.
        desired = again.entries("desired")
        assert desired[0]["full"] and desired[0]["props"] == {"vav.v1.Airflow": 90}
        state = eventually(
            lambda: (s := live.get(f"/twins/{twin}"))["sync"]["status"] == "synced" and s,
            what="sync after restart",
        )
        assert state["reported"]["vav.v1.Airflow"]["value"] == 90 and state["online"]
        first = live.get(f"/twins/{twin}/commands/{queued[0]}")
        assert first["result"] == {"done": "open", "input": {"pct": 10}}
        expired = live.get("/events", twin=vav(1, 1), type="command.expired")["events"]
        assert [(e["data"]["command"], e["ok"]) for e in expired] == [(short, False)]
    finally:
        again.stop()


def test_desired_values_for_every_vav_of_a_level_by_sparql_selector(live: Live) -> None:
    level2 = {live.twin(vav(2, n))[0]: n for n in range(1, 5)}
    secrets = {tid: live.twin(vav(2, n))[1] for tid, n in level2.items()}
    other, other_secret = live.twin(vav(3, 1))
    selector = (
        "SELECT ?vav WHERE { ?vav a brick:VAV ; brick:hasLocation/rec:isPartOf ?level . "
        "?level rec:levelNumber 2 }"
    )
    sim = Device(live.settings.mqtt_url or "", {**secrets, other: other_secret}, heartbeat_s=5)
    sim.start()
    try:
        assert sim.ready.wait(10)
        eventually(
            lambda: all(live.get(f"/twins/{t}")["online"] for t in [*level2, other]),
            what="simulated devices online",
        )
        job = live.send(
            "POST",
            "/jobs",
            {"selector": {"sparql": selector}, "desired": {"vav.v1.AirflowSetpoint": 300}},
            201,
        )
        assert (job["total"], job["succeeded"], job["failed"]) == (4, 4, 0)
        assert sorted(r["twin"] for r in job["results"]) == sorted(level2)
        assert live.get(f"/jobs/{job['id']}")["results"] == job["results"]

        def in_sync(twin: str) -> Any:
            state = live.get(f"/twins/{twin}")
            done = (
                state["sync"]["status"] == "synced"
                and "vav.v1.AirflowSetpoint" in state["reported"]
            )
            return state if done else None

        for twin in level2:
            state = eventually(lambda t=twin: in_sync(t), what=f"{twin} synced")  # type: ignore[misc]
            assert state["reported"]["vav.v1.AirflowSetpoint"]["value"] == 300
        assert live.get(f"/twins/{other}")["desired"] == {}  # level 3 untouched
        # The same selector filters the event stream: one synced event per VAV of level 2.
        synced = live.get("/events", selector=selector, type="synced")["events"]
        assert sorted(e["data"]["twinId"] for e in synced) == sorted(level2)
        assert all("https://brickschema.org/schema/Brick#VAV" in e["classes"] for e in synced)
    finally:
        sim.stop()


def test_a_device_cannot_touch_another_twin_over_mqtt_or_http(live: Live) -> None:
    mine, my_secret = live.twin(vav(3, 2))
    theirs, their_secret = live.twin(vav(3, 3))
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", int((live.settings.mqtt_url or "").rsplit(":", 1)[1]))
    client.loop_start()
    try:
        topic = f"twingraph/devices/{theirs}/reported"
        forged = seal(key_of(my_secret), topic, {"ts": time.time(), "props": {"vav.v1.Airflow": 1}})
        client.publish(topic, forged, qos=1).wait_for_publish(5)
        # My own topic with my own key is accepted: the platform is listening.
        own = f"twingraph/devices/{mine}/reported"
        body = {"ts": time.time(), "props": {"vav.v1.Airflow": 2}}
        client.publish(own, seal(key_of(my_secret), own, body), qos=1).wait_for_publish(5)
        eventually(lambda: live.get(f"/twins/{mine}")["reported"], what="own report")
        rejected = eventually(
            lambda: live.get("/events", twin=vav(3, 3), type="device.rejected")["events"],
            what="rejection event",
        )
        assert rejected[-1]["ok"] is False and rejected[-1]["data"]["code"] == "bad_signature"
        assert live.get(f"/twins/{theirs}")["reported"] == {}
    finally:
        client.disconnect()
        client.loop_stop()

    path = f"{live.url}/devices/{theirs}/reported"
    body = {"props": {"vav.v1.Airflow": 3}}
    as_me = httpx.post(path, json=body, headers={"Authorization": f"Bearer {my_secret}"})
    assert (as_me.status_code, as_me.json()["code"]) == (403, "not_your_twin")
    as_user = httpx.post(path, json=body, headers=live.auth)
    assert (as_user.status_code, as_user.json()["code"]) == (401, "device_credential_required")
    unknown = httpx.post(path, json=body, headers={"Authorization": "Bearer tgd_nope"})
    assert (unknown.status_code, unknown.json()["code"]) == (401, "invalid_device_credential")
    assert live.get(f"/twins/{theirs}")["reported"] == {}
    ok = httpx.post(path, json=body, headers={"Authorization": f"Bearer {their_secret}"})
    assert ok.status_code == 200 and ok.json()["reported"]["vav.v1.Airflow"]["value"] == 3
