"""SSE events, revisions and time travel over real HTTP (uvicorn) with PostgreSQL behind."""

from __future__ import annotations

import contextlib
import json
import queue
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import pytest

from app.security.tokens import Scope
from tests.conftest import Server
from tests.factories import vav_model

TTL = "text/turtle"


@contextmanager
def sse(
    server: Server, path: str, token: str | None = None, **params: object
) -> Iterator[queue.Queue[dict[str, object]]]:
    """Read an SSE stream on a thread (with the read token unless ``token`` is given);
    yields a queue of parsed messages once connected."""
    messages: queue.Queue[dict[str, object]] = queue.Queue()
    connected = threading.Event()
    stop = threading.Event()
    auth = {"Authorization": f"Bearer {token}"} if token else server.auth("read")
    headers = {**auth, "Accept": "text/event-stream"}
    last_id = params.pop("last_event_id", None)
    if last_id is not None:
        headers["Last-Event-ID"] = str(last_id)

    opened: list[httpx.Response] = []

    def run() -> None:
        try:
            read()
        except (httpx.HTTPError, OSError):
            if not stop.is_set():  # hung up by us on exit: expected; anything else is not
                raise

    def read() -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(30, read=60)) as client,
            client.stream("GET", f"{server.url}{path}", params=params, headers=headers) as r,
        ):
            opened.append(r)
            if r.status_code != 200:
                messages.put({"status": r.status_code, "body": r.read().decode()})
                connected.set()
                return
            message: dict[str, object] = {}
            for line in r.iter_lines():
                if stop.is_set():
                    return
                if line.startswith(": connected"):
                    connected.set()
                elif line == "":
                    if message:
                        messages.put(message)
                    message = {}
                elif not line.startswith(":"):
                    key, _, value = line.partition(": ")
                    message[key] = json.loads(value) if key == "data" else value

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert connected.wait(10), "SSE stream did not connect"
    try:
        yield messages
    finally:
        stop.set()
        for response in opened:  # hang up, so the server does not wait for this stream
            hang_up(response)
        thread.join(5)


def hang_up(response: httpx.Response) -> None:
    """Close a streaming response from another thread. Shutting the socket down first
    wakes the reader blocked in ``recv`` at once (closing alone leaves it waiting for the
    next keep-alive)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(Exception):
        response.close()


def put_model(server: Server, graph: str, turtle: str) -> httpx.Response:
    return httpx.put(
        f"{server.url}/rdf-graphs",
        params={"graph": graph},
        content=turtle.encode(),
        headers={**server.auth("write"), "Content-Type": TTL},
        timeout=60,
    )


def next_message(
    messages: queue.Queue[dict[str, object]], timeout: float = 10
) -> dict[str, object]:
    return messages.get(timeout=timeout)


def test_sse_delivers_filtered_model_events_and_resumes(server: Server, graph_iri: str) -> None:
    with sse(server, "/events", graph=graph_iri) as messages:
        assert put_model(server, graph_iri, vav_model("e1")).status_code in (200, 201)
        bad = put_model(server, graph_iri, vav_model("e1", unit="unit:NOPE"))
        assert bad.status_code == 422
        first, second = next_message(messages), next_message(messages)
    assert first["event"] == "model.replaced"
    data = first["data"]
    assert isinstance(data, dict)
    assert data["graph"] == graph_iri and data["author"] == "tests" and data["ok"] is True
    assert second["event"] == "validation.failed"
    assert isinstance(second["data"], dict) and second["data"]["ok"] is False

    # Resume after the first event: the stored log replays the second one.
    with sse(server, "/events", graph=graph_iri, last_event_id=first["id"]) as again:
        replayed = next_message(again)
    assert replayed["id"] == second["id"] and replayed["event"] == "validation.failed"

    # Without Accept: text/event-stream, a JSON page of the log with the same filters.
    page = httpx.get(
        f"{server.url}/events",
        params={"graph": graph_iri, "type": "model.*"},
        headers=server.auth("read"),
    ).json()
    assert [e["type"] for e in page["events"]] == ["model.replaced"]


def test_sse_selector_and_class_filters(server: Server, demo_graph: str, graph_iri: str) -> None:
    bus = server.platform.events
    assert bus is not None
    brick = "https://brickschema.org/schema/Brick#"
    rows = server.platform.store.query(
        f"SELECT ?vav ?ahu WHERE {{ GRAPH <{demo_graph}> {{ ?ahu <{brick}feeds> ?vav }} "
        f"?vav a <{brick}VAV> . ?ahu a <{brick}AHU> }} LIMIT 1",
    )
    row = next(iter(rows))
    vav, ahu = row["vav"].value, row["ahu"].value  # type: ignore[index,union-attr]
    selector = "SELECT ?vav WHERE { ?vav a brick:VAV }"
    with (
        sse(server, "/events", selector=selector, type="desired.*") as by_pattern,
        sse(server, "/events", **{"class": "brick:Equipment"}) as by_class,
    ):
        from app.events.model import Event

        equipment = (f"{brick}Equipment",)
        bus.publish(Event(type="desired.set", twin=ahu, classes=equipment, data={"n": 1}))
        bus.publish(Event(type="desired.set", twin=vav, classes=equipment, data={"n": 2}))
        bus.publish(Event(type="reported", twin=vav, data={"n": 3}))
        picked = next_message(by_pattern)
        classed = [next_message(by_class), next_message(by_class)]
        # A VAV added after the stream started is selected once the model change is seen.
        assert put_model(server, graph_iri, vav_model("late-vav")).status_code in (200, 201)
        bus.publish(Event(type="desired.set", twin="urn:ex:late-vav", data={"n": 4}))
        late = next_message(by_pattern)
        time.sleep(0.3)
        assert by_pattern.empty() and by_class.empty()
    assert isinstance(picked["data"], dict) and picked["data"]["twin"] == vav
    assert isinstance(late["data"], dict) and late["data"]["twin"] == "urn:ex:late-vav"
    assert [m["data"]["data"]["n"] for m in classed] == [1, 2]  # type: ignore[index]

    bad = httpx.get(
        f"{server.url}/events",
        params={"type": "no.such"},
        headers={**server.auth("read"), "Accept": "text/event-stream"},
    )
    assert bad.status_code == 400 and bad.json()["code"] == "unknown_event_type"
    no_token = httpx.get(f"{server.url}/events", headers={"Authorization": "Bearer nope"})
    assert no_token.status_code == 401


def test_live_readings_stream(server: Server) -> None:
    ref = next(r for r in server.platform.points.all() if "fixture" in r.point or "demo" in r.point)
    other = next(r for r in server.platform.points.all() if r.uuid != ref.uuid)
    # Long ago: the readings never become a point's latest, which other tests check.
    when = datetime(2001, 1, 1, tzinfo=UTC) + timedelta(seconds=time.time() % 86400)
    with sse(server, "/events/readings", point=str(ref.uuid)) as messages:
        body = {
            "readings": [
                {"point": str(other.uuid), "time": when.isoformat(), "value": 1.0},
                {"point": str(ref.uuid), "time": when.isoformat(), "value": 42.5},
            ]
        }
        r = httpx.post(f"{server.url}/telemetry", json=body, headers=server.auth("write"))
        assert r.status_code == 200, r.text
        message = next_message(messages)
    assert message["event"] == "readings"
    assert message["data"] == [{"point": str(ref.uuid), "time": when.isoformat(), "value": 42.5}]
    unknown = httpx.get(
        f"{server.url}/events/readings",
        params={"point": str(uuid.uuid4())},
        headers={**server.auth("read"), "Accept": "text/event-stream"},
    )
    assert unknown.status_code == 404


def test_revisions_api_and_sparql_as_of(server: Server, graph_iri: str) -> None:
    assert put_model(server, graph_iri, vav_model("r1")).status_code in (200, 201)
    time.sleep(0.05)
    t1 = datetime.now(UTC)
    time.sleep(0.05)
    assert put_model(server, graph_iri, vav_model("r2")).status_code == 200
    time.sleep(0.05)
    update = f'INSERT DATA {{ GRAPH <{graph_iri}> {{ <urn:ex:r2> <http://www.w3.org/2000/01/rdf-schema#comment> "c" }} }}'
    r = httpx.post(f"{server.url}/sparql", data={"update": update}, headers=server.auth("write"))
    assert r.status_code == 200, r.text

    listed = httpx.get(
        f"{server.url}/revisions", params={"graph": graph_iri}, headers=server.auth("read")
    ).json()["revisions"]
    assert [x["operation"] for x in listed] == ["replace", "replace", "update"]
    first, _, third = listed
    one = httpx.get(f"{server.url}/revisions/{third['id']}", headers=server.auth("read")).json()
    assert one["added"] == 1 and '"c"' in one["diff"]["added"] and one["diff"]["removed"] == ""
    diff = httpx.get(
        f"{server.url}/revisions/diff",
        params={"from": first["id"], "to": third["id"], "graph": graph_iri},
        headers=server.auth("read"),
    ).json()["graphs"][graph_iri]
    assert "VAV r2" in diff["added"] and "VAV r1" in diff["removed"]
    missing = httpx.get(f"{server.url}/revisions/999999999", headers=server.auth("read"))
    assert missing.status_code == 404 and missing.json()["code"] == "revision_not_found"

    query = f"SELECT ?l WHERE {{ GRAPH <{graph_iri}> {{ ?s rdfs:label ?l }} }}"
    then = httpx.get(
        f"{server.url}/sparql",
        params={"query": query, "asOf": t1.isoformat()},
        headers={**server.auth("read"), "Accept": "application/sparql-results+json"},
        timeout=60,  # the first view of a past moment is built (ontologies + models)
    )
    assert then.status_code == 200, then.text
    labels = {b["l"]["value"] for b in then.json()["results"]["bindings"]}
    assert labels == {"AHU r1", "VAV r1", "r1 zone air temperature"}
    assert then.headers["X-TwinGraph-Revision"] == str(first["id"])

    dump = httpx.get(
        f"{server.url}/model",
        params={"asOf": t1.isoformat()},
        headers=server.auth("read"),
        timeout=60,
    )
    assert dump.status_code == 200
    mine = [line for line in dump.text.splitlines() if line.endswith(f"<{graph_iri}> .")]
    assert any('"VAV r1"' in line for line in mine) and not any("r2" in line for line in mine)

    naive = httpx.get(
        f"{server.url}/sparql",
        params={"query": query, "asOf": "2026-01-01T00:00:00"},
        headers=server.auth("read"),
    )
    assert naive.status_code == 400 and "time zone" in naive.json()["detail"]
    assert quote(graph_iri)  # graph IRIs are plain URNs; nothing to escape


def test_streams_end_with_a_problem_when_their_token_is_revoked(server: Server) -> None:
    """Both SSE streams check the caller's token every few seconds while open."""
    tokens = server.platform.tokens
    token = tokens.create(Scope.READ, label="revoked while streaming")
    with sse(server, "/events", token=token) as events, sse(
        server, "/events/readings", token=token
    ) as readings, sse(server, "/events") as unaffected:
        assert tokens.revoke(token.split("_")[1])
        for stream in (events, readings):
            deadline = time.monotonic() + 15
            while True:  # events other tests caused may come first
                message = next_message(stream, timeout=max(0.1, deadline - time.monotonic()))
                if message.get("event") == "error":
                    break
            data = message["data"]
            assert isinstance(data, dict)
            assert data["code"] == "token_revoked" and data["status"] == 401
        put_model(server, f"urn:twingraph:test:revoke-{uuid.uuid4().hex[:8]}", vav_model("RV"))
        deadline = time.monotonic() + 10
        while True:  # the other token's stream goes on
            message = next_message(unaffected, timeout=max(0.1, deadline - time.monotonic()))
            assert message.get("event") != "error"
            if message.get("event") == "model.replaced":
                break
    with pytest.raises(httpx.HTTPStatusError) as refused:
        httpx.get(
            f"{server.url}/events", headers={"Authorization": f"Bearer {token}"}
        ).raise_for_status()
    assert refused.value.response.status_code == 401
