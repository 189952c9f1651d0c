"""Live twins over real HTTP (uvicorn, PostgreSQL, both store modes): the user API with its
problem+json errors and scopes, the HTTP device channel, Thing Descriptions, writable
points confirmed by telemetry, and bulk jobs."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from pyoxigraph import RdfFormat

from tests.conftest import Server
from tests.integration.test_twins import twin_model

PROBLEM = "application/problem+json"


class Model:
    def __init__(self, server: Server) -> None:
        self.name = f"h{uuid.uuid4().hex[:8]}"
        self.setpoint_ts = str(uuid.uuid4())
        self.sensor_ts = str(uuid.uuid4())
        server.platform.models.ingest(
            graph=f"urn:twingraph:model:twins-{self.name}",
            data=twin_model(self.name, self.setpoint_ts, self.sensor_ts).encode(),
            fmt=RdfFormat.TURTLE,
        )

    def iri(self, part: str) -> str:
        return f"urn:ex:{self.name}-{part}"


@pytest.fixture
def c(server: Server) -> Iterator[httpx.Client]:
    """One client per test: a connection kept alive, as a real consumer would."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


def problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    return body


def eventually(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
    return result


def test_twins_over_http_with_scopes_and_precise_errors(server: Server, c: httpx.Client) -> None:
    m = Model(server)
    url, write, read = server.url, server.auth("write"), server.auth("read")
    body = {
        "entity": m.iri("vav"),
        "labels": {"type": "vav", "run": m.name},
        "schemas": {"vav.v1.Airflow": {"type": "number", "minimum": 0}},
        "actions": {"flush": {"input": {"type": "object"}}},
    }
    problem(c.post("/twins", json=body), 401, "token_required")
    problem(c.post("/twins", json=body, headers=read), 403, "insufficient_scope")
    problem(c.post("/twins", json={**body, "x": 1}, headers=write), 422, "invalid_request")
    problem(
        c.post("/twins", json={"entity": "urn:ex:none"}, headers=write),
        404,
        "entity_not_found",
    )
    created = c.post("/twins", json=body, headers=write)
    assert created.status_code == 201, created.text
    twin = created.json()["twin"]
    tid = twin["id"]
    assert created.headers["location"] == f"/twins/{tid}"
    assert created.json()["deviceSecret"].startswith("tgd_")
    assert twin["site"] == m.iri("site") and twin["labels"] == {"type": "vav", "run": m.name}
    problem(c.post("/twins", json=body, headers=write), 409, "twin_exists")

    assert c.get(f"/twins/{m.iri('vav')}", headers=read).json()["id"] == tid
    listed = c.get("/twins", params={"labels": f"run={m.name}"}, headers=read).json()
    assert [t["id"] for t in listed["twins"]] == [tid]
    problem(c.get("/twins", params={"labels": "a=b=c"}, headers=read), 400, "bad_selector")
    problem(c.get(f"/twins/nope-{m.name}", headers=read), 404, "twin_not_found")

    desired = f"{url}/twins/{tid}/desired"
    problem(c.patch(desired, json={"Airflow": 1}, headers=write), 400, "bad_property_name")
    problem(c.patch(desired, json={"vav.v1.Airflow": -5}, headers=write), 400, "schema_violation")
    problem(c.patch(desired, json={"vav.v1.Airflow": 5}, headers=read), 403, "insufficient_scope")
    before = datetime.now(UTC)
    state = c.patch(desired, json={"vav.v1.Airflow": 120}, headers=write).json()
    assert state["desired"]["vav.v1.Airflow"]["value"] == 120
    assert state["sync"] == {"status": "pending", "properties": {"vav.v1.Airflow": "pending"}}
    after = datetime.now(UTC)
    then = c.get(f"/twins/{tid}", params={"asOf": before.isoformat()}, headers=read)
    assert then.json()["desired"] == {} and then.json()["asOf"] == before.isoformat()
    now = c.get(f"/twins/{tid}", params={"asOf": after.isoformat()}, headers=read)
    assert now.json()["desired"]["vav.v1.Airflow"]["value"] == 120
    problem(
        c.get(f"/twins/{tid}", params={"asOf": "2001-01-01T00:00:00Z"}, headers=read),
        404,
        "twin_not_found_at",
    )
    problem(c.get(f"/twins/{tid}", params={"asOf": "yesterday"}, headers=read), 400, "bad_time")

    commands = f"{url}/twins/{tid}/commands"
    key = {**write, "Idempotency-Key": f"k-{m.name}"}
    first = c.post(commands, json={"name": "flush", "input": {}, "ttl": 60}, headers=key)
    assert first.status_code == 201 and first.json()["state"] == "queued"
    again = c.post(commands, json={"name": "flush", "input": {}, "ttl": 60}, headers=key)
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    problem(
        c.post(commands, json={"name": "flush", "input": {"x": 1}, "ttl": 60}, headers=key),
        409,
        "idempotency_key_reused",
    )
    problem(c.post(commands, json={"name": "boom"}, headers=write), 400, "unknown_action")
    problem(c.post(commands, json={"name": "flush", "ttl": -1}, headers=write), 400, "bad_ttl")
    cid = first.json()["id"]
    assert c.get(f"{commands}/{cid}", headers=read).json()["idempotencyKey"] == f"k-{m.name}"
    assert [c["id"] for c in c.get(commands, headers=read).json()["commands"]] == [cid]
    problem(c.get(f"{commands}/999999999", headers=read), 404, "command_not_found")
    problem(c.get(commands, params={"state": "lost"}, headers=read), 400, "bad_command_state")

    history = c.get(f"/twins/{tid}/history", headers=read).json()
    assert history["snapshots"] and history["deltaS"] == 60.0
    patched = c.patch(f"/twins/{tid}", json={"labels": {"type": "box"}}, headers=write)
    assert patched.json()["labels"] == {"type": "box"}
    problem(c.patch(f"/twins/{tid}", json={}, headers=write), 400, "no_change")
    assert c.delete(f"/twins/{tid}", headers=write).status_code == 204
    problem(c.get(f"/twins/{tid}", headers=read), 404, "twin_not_found")


def test_thing_description_and_registration_by_td(server: Server, c: httpx.Client) -> None:
    m = Model(server)
    write, read = server.auth("write"), server.auth("read")
    td = {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        "id": m.iri("vav"),
        "title": "VAV controller",
        "twingraph:labels": {"vendor": "acme"},
        "securityDefinitions": {"nosec_sc": {"scheme": "nosec"}},
        "security": "nosec_sc",
        "properties": {
            "acme.v1.Mode": {"type": "string", "enum": ["eco", "comfort"], "forms": []},
        },
        "actions": {
            "purge": {"input": {"type": "object", "properties": {"s": {"type": "integer"}}}}
        },
    }
    problem(c.post("/devices/register", json=td, headers=read), 403, "insufficient_scope")
    problem(
        c.post("/devices/register", json={**td, "@context": "x"}, headers=write),
        400,
        "bad_td",
    )
    done = c.post("/devices/register", json=td, headers=write)
    assert done.status_code == 201, done.text
    twin, secret = done.json()["twin"], done.json()["deviceSecret"]
    assert twin["schemas"]["acme.v1.Mode"]["enum"] == ["eco", "comfort"]
    assert twin["labels"] == {"vendor": "acme"} and "purge" in twin["actions"]
    # The TD's schema is enforced from now on.
    problem(
        c.patch(f"/twins/{twin['id']}/desired", json={"acme.v1.Mode": "turbo"}, headers=write),
        400,
        "schema_violation",
    )

    rendered = c.get(f"/twins/{twin['id']}/td", headers=read)
    assert rendered.headers["content-type"].startswith("application/td+json")
    doc = rendered.json()
    assert doc["id"] == m.iri("vav") and doc["@context"][0].endswith("/td/v1.1")
    assert "brick:VAV" in doc["@type"] or any("VAV" in t for t in doc["@type"])
    assert doc["properties"]["acme.v1.Mode"]["enum"] == ["eco", "comfort"]
    points = {
        p["twingraph:point"]: p for k, p in doc["properties"].items() if k.startswith("point.")
    }
    assert set(points) == {m.iri("sp"), m.iri("zat")}
    assert points[m.iri("sp")]["readOnly"] is False and points[m.iri("zat")]["readOnly"] is True
    assert points[m.iri("zat")]["unit"].endswith("DEG_C")
    assert doc["actions"]["purge"]["forms"][0]["op"] == ["invokeaction"]
    assert {"reported", "synced", "device.online"} <= set(doc["events"])
    assert secret.startswith("tgd_")


def test_http_device_channel_long_poll_report_and_commands(server: Server, c: httpx.Client) -> None:
    m = Model(server)
    url, write = server.url, server.auth("write")
    made = c.post("/twins", json={"entity": m.iri("vav")}, headers=write).json()
    tid, secret = made["twin"]["id"], made["deviceSecret"]
    other = c.post("/twins", json={"entity": m.iri("zat")}, headers=write).json()
    device = {"Authorization": f"Bearer {secret}"}
    dev = f"{url}/devices/{tid}"

    problem(c.get(f"{dev}/inbox", headers=write), 401, "device_credential_required")
    problem(
        c.get(f"/devices/{other['twin']['id']}/inbox", headers=device),
        403,
        "not_your_twin",
    )
    assert c.post(f"{dev}/heartbeat", json={"boot": True}, headers=device).json()["online"]
    assert c.get(f"{dev}/inbox", headers=device).json() == {}  # nothing yet

    def later() -> None:
        time.sleep(0.3)
        c.patch(f"/twins/{tid}/desired", json={"acme.v1.Mode": "eco"}, headers=write)

    threading.Thread(target=later, daemon=True).start()
    t = time.monotonic()
    got = c.get(f"{dev}/inbox", params={"wait": 10}, headers=device, timeout=15).json()
    assert time.monotonic() - t < 5  # woken by the change, not by the timeout
    assert got["desired"] == {"version": 1, "full": True, "props": {"acme.v1.Mode": "eco"}}
    # A device that restarts without storage gets its configuration back.
    assert c.get(f"{dev}/desired", headers=device).json() == {
        "version": 1,
        "props": {"acme.v1.Mode": "eco"},
    }
    state = c.post(
        f"{dev}/reported",
        json={"props": {"acme.v1.Mode": "eco"}, "desiredVersion": 1},
        headers=device,
    ).json()
    assert state["sync"]["status"] == "synced" and state["transport"] == "http"

    cmd = c.post(f"/twins/{tid}/commands", json={"name": "purge"}, headers=write).json()
    inbox = c.get(f"{dev}/inbox", params={"desiredVersion": 1}, headers=device).json()
    assert [c["id"] for c in inbox["commands"]] == [cmd["id"]] and "desired" not in inbox
    assert c.get(f"/twins/{tid}/commands/{cmd['id']}", headers=write).json()["state"] == "delivered"
    after = {"desiredVersion": 1, "after": cmd["id"]}
    assert c.get(f"{dev}/inbox", params=after, headers=device).json() == {}
    acked = c.post(f"{dev}/commands/{cmd['id']}/ack", json={}, headers=device)
    assert acked.json()["state"] == "acknowledged"
    result = c.post(
        f"{dev}/commands/{cmd['id']}/result", json={"ok": True, "output": 7}, headers=device
    )
    assert result.json()["state"] == "succeeded" and result.json()["result"] == 7
    # The other twin's command is out of this device's reach.
    theirs = c.post(
        f"/twins/{other['twin']['id']}/commands", json={"name": "x"}, headers=write
    ).json()
    problem(
        c.post(f"{dev}/commands/{theirs['id']}/ack", json={}, headers=device),
        404,
        "command_not_found",
    )
    assert c.post(f"{dev}/heartbeat", json={"status": "offline"}, headers=device).json() == {
        "online": False
    }
    types = [
        e["type"]
        for e in c.get(
            "/events", params={"twin": m.iri("vav"), "limit": 100}, headers=write
        ).json()["events"]
    ]
    for expected in ("device.online", "desired.set", "reported", "synced", "command.succeeded"):
        assert expected in types
    assert types[-1] == "device.offline"


def test_writable_points_and_bulk_jobs(server: Server, c: httpx.Client) -> None:
    m = Model(server)
    write, read = server.auth("write"), server.auth("read")
    problem(
        c.put(f"/points/{m.sensor_ts}/value", json={"value": 20}, headers=write),
        409,
        "point_not_writable",
    )
    problem(
        c.put(f"/points/{uuid.uuid4()}/value", json={"value": 20}, headers=write),
        404,
        "unknown_point",
    )
    r = c.put(f"/points/{m.setpoint_ts}/value", json={"value": 21.5}, headers=write)
    assert r.status_code == 202 and r.json()["desired"]["value"] == 21.5
    assert r.json()["sync"] == "pending" and r.json()["writable"]
    reading = {"point": m.setpoint_ts, "time": datetime.now(UTC).isoformat(), "value": 21.5}
    stored = c.post("/telemetry", json={"readings": [reading]}, headers=write)
    assert stored.status_code == 200, stored.text
    value = eventually(
        lambda: (
            (v := c.get(f"/points/{m.iri('sp')}/value", headers=read).json())["sync"] == "synced"
            and v
        )
    )
    assert value["value"] == 21.5 and value["twin"]

    for part in ("vav", "zat"):
        c.post(
            "/twins",
            json={"entity": m.iri(part), "labels": {"run": m.name, "part": part}},
            headers=write,
        )
    problem(
        c.post(
            "/jobs",
            json={"selector": {"labels": f"run={m.name}"}, "desired": {}, "command": {"name": "x"}},
            headers=write,
        ),
        400,
        "bad_job",
    )
    job = c.post(
        "/jobs",
        json={"selector": {"labels": f"run={m.name}"}, "command": {"name": "ping", "ttl": 30}},
        headers=write,
    )
    assert job.status_code == 201, job.text
    assert (job.json()["total"], job.json()["succeeded"]) == (2, 2)
    again = c.get(job.headers["location"], headers=read).json()
    assert {r["code"] for r in again["results"]} == {"queued"}
    problem(c.get("/jobs/999999999", headers=read), 404, "job_not_found")
    # Class and site filters find the twin events (the twin's classes carry superclasses).
    found = c.get(
        "/events",
        params={"class": "brick:Equipment", "site": m.iri("site"), "type": "command.queued"},
        headers=read,
    ).json()["events"]
    assert [e["twin"] for e in found] == [m.iri("vav")]
