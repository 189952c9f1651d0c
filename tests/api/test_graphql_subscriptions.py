"""GraphQL subscriptions over a real websocket (graphql-transport-ws) with the `gql` client:
readings published over a real MQTT broker, model changes from mutations, bus events, and
the same token, depth and cost rules as queries."""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport
from gql.transport.websockets import WebsocketsTransport
from paho.mqtt.enums import CallbackAPIVersion

from app.domain.iris import BRICK, REC
from app.domain.telemetry import Reading
from app.errors import UnavailableError
from app.events.model import Event
from app.platform import Platform
from app.security.tokens import Scope
from app.telemetry.broker import LocalMosquitto, find_mosquitto
from app.telemetry.mqtt_ingest import MqttIngest
from app.telemetry.mqtt_topics import point_topic
from tests.conftest import Server
from tests.factories import broken_unit_model, vav_model

DEMO = "urn:twingraph:demo:"
ZAT = "brick:Zone_Air_Temperature_Sensor"
PROTOCOL = WebsocketsTransport.GRAPHQLWS_SUBPROTOCOL  # graphql-transport-ws


def ws_url(http_url: str) -> str:
    return http_url.replace("http://", "ws://", 1) + "/graphql"


def ws_client(
    http_url: str, auth: dict[str, str] | None = None, *, in_header: bool = False
) -> Client:
    """A websocket client; ``auth`` goes in connection_init, or on the upgrade request."""
    transport = WebsocketsTransport(
        url=ws_url(http_url),
        init_payload=None if in_header else auth,
        headers=auth if in_header else None,
        subprotocols=[PROTOCOL],
    )
    return Client(transport=transport)


def http(server_url: str, auth: dict[str, str], query: str, **variables: Any) -> dict[str, Any]:
    transport = HTTPXTransport(url=server_url + "/graphql", headers=auth, timeout=60)
    with Client(transport=transport) as session:
        data = session.execute(GraphQLRequest(query, variable_values=variables or None))
    return data


class Live:
    """One subscription's messages, pumped into a queue so a test can publish meanwhile."""

    def __init__(
        self, session: AsyncClientSession, query: str, variables: dict[str, Any] | None = None
    ) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        stream = session.subscribe(GraphQLRequest(query, variable_values=variables))
        self.task = asyncio.create_task(self._pump(stream))

    async def _pump(self, stream: AsyncIterator[dict[str, Any]]) -> None:
        async for data in stream:
            await self.queue.put(data)

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next message; the subscription's error if it failed; TimeoutError if none."""
        get = asyncio.ensure_future(self.queue.get())
        done, _ = await asyncio.wait(
            {get, self.task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if get in done:
            return get.result()
        get.cancel()
        if self.task in done:
            self.task.result()  # raises the subscription's error
            raise AssertionError("the subscription ended")
        raise TimeoutError

    async def close(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def first_error(session: AsyncClientSession, query: str, **variables: Any) -> dict[str, Any]:
    with pytest.raises(TransportQueryError) as info:
        async for _ in session.subscribe(GraphQLRequest(query, variable_values=variables or None)):
            pass
    errors: list[dict[str, Any]] = info.value.errors or []
    assert errors, info.value
    return errors[0]


async def until_live(live: Live, poke: Callable[[int], Awaitable[None]]) -> dict[str, Any]:
    """A subscription starts listening a moment after it is sent (graphql-transport-ws
    has no acknowledgement): poke until something arrives; returns that message."""
    for attempt in range(100):
        await poke(attempt)
        try:
            return await live.next(timeout=0.25)
        except TimeoutError:
            continue
    raise AssertionError("the subscription never delivered")


# -- readings over MQTT --------------------------------------------------------------------


class Publisher:
    def __init__(self, url: str) -> None:
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.c.connect("127.0.0.1", int(url.rsplit(":", 1)[1]))
        self.c.loop_start()

    def reading(self, point: str, value: float, at: datetime) -> None:
        body = f'{{"time": "{at.isoformat()}", "value": {value}}}'
        self.c.publish(point_topic("gql", uuid.UUID(point)), body, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()


@pytest.fixture
def mqtt_feed(tmp_path: Path, platform: Platform) -> Iterator[Publisher]:
    """A real mosquitto and the platform's MQTT ingest writing into its telemetry."""
    try:
        find_mosquitto()
    except UnavailableError as exc:
        pytest.skip(exc.detail)
    broker = LocalMosquitto(tmp_path / "mosquitto")
    url = broker.start()
    telemetry = platform.telemetry
    assert telemetry is not None

    def store(readings: list[Reading]) -> None:
        telemetry.write(readings=readings)

    ingest = MqttIngest(
        url,
        client_id=f"gql-test-{uuid.uuid4().hex[:8]}",
        store=store,
        known_point=platform.points.known,
    )
    ingest.start()
    assert ingest.wait_connected(5)
    publisher = Publisher(url)
    try:
        yield publisher
    finally:
        publisher.close()
        ingest.stop()
        broker.stop()


def zat_points(server: Server, level: str) -> dict[str, str]:
    data = http(
        server.url,
        server.auth("read"),
        f'query($l: ID!) {{ points(type: "{ZAT}", within: $l) {{ nodes {{ id timeseriesUuid }} }} }}',
        l=level,
    )
    return {n["timeseriesUuid"]: n["id"] for n in data["points"]["nodes"]}


LEVEL_READINGS = f"""subscription($l: ID!) {{
  readings(within: $l, type: "{ZAT}") {{
    timeseriesUuid time value number
    point {{ id label isPointOf {{ label }} }}
  }}
}}"""
SELECTED_READINGS = "subscription($s: String!) { readings(selector: $s) { timeseriesUuid value } }"
TYPED_READINGS = f'subscription {{ readings(type: "{ZAT}") {{ timeseriesUuid value }} }}'
#: The same points as LEVEL_READINGS, chosen by a graph pattern.
LEVEL3_SELECTOR = (
    f"SELECT ?p WHERE {{ ?p a <{BRICK}Zone_Air_Temperature_Sensor> ; "
    f"<{BRICK}isPointOf>/<{BRICK}hasLocation>/<{REC}isPartOf>+ <{DEMO}bldg/L03> }}"
)


async def values_until(live: Live, wanted: set[str]) -> dict[str, dict[str, Any]]:
    """The non-zero readings (zero marks warm-up) until every point in ``wanted`` has one."""
    got: dict[str, dict[str, Any]] = {}
    while not wanted <= set(got):
        for r in (await live.next())["readings"]:
            if r["value"] != 0.0:
                got[r["timeseriesUuid"]] = r
    return got


def test_readings_published_over_mqtt_reach_subscriptions_by_selection(
    server: Server, mqtt_feed: Publisher
) -> None:
    level3 = zat_points(server, DEMO + "bldg/L03")
    level1 = zat_points(server, DEMO + "bldg/L01")
    assert len(level3) == len(level1) == 4
    warm = next(iter(level3))
    outsider = next(iter(level1))
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3650)

    async def scenario() -> list[float]:
        async with ws_client(server.url, server.auth("read")) as session:
            assert session.transport.subprotocol == PROTOCOL  # type: ignore[attr-defined]
            level = Live(session, LEVEL_READINGS, {"l": DEMO + "bldg/L03"})
            selected = Live(session, SELECTED_READINGS, {"s": LEVEL3_SELECTOR})
            typed = Live(session, TYPED_READINGS)

            async def poke(i: int) -> None:
                at = base + timedelta(milliseconds=i)
                await asyncio.to_thread(mqtt_feed.reading, warm, 0.0, at)

            for live in (level, selected, typed):
                await until_live(live, poke)
            # A point outside level 3 first, then one reading per level-3 point.
            at = base + timedelta(seconds=10)
            await asyncio.to_thread(mqtt_feed.reading, outsider, 101.0, at)
            for i, point in enumerate(sorted(level3)):
                await asyncio.to_thread(mqtt_feed.reading, point, float(i + 1), at)
            # The ingest keeps their order: a leaked outsider would arrive before the rest.
            got = await values_until(level, set(level3))
            assert set(got) == set(level3)
            for i, point in enumerate(sorted(level3)):
                r = got[point]
                assert r["value"] == r["number"] == float(i + 1)
                assert datetime.fromisoformat(r["time"]) == at
                assert r["point"]["id"] == level3[point]
                assert r["point"]["isPointOf"][0]["label"].startswith("VAV-3.")
            by_selector = await values_until(selected, set(level3))
            assert {p: r["value"] for p, r in by_selector.items()} == {
                p: float(i + 1) for i, p in enumerate(sorted(level3))
            }
            everywhere = await values_until(typed, {outsider, *level3})
            assert everywhere[outsider]["value"] == 101.0
            for live in (selected, typed):
                await live.close()
            # Latency from MQTT publish to GraphQL delivery, one reading at a time.
            delays = []
            for i in range(20):
                when = base + timedelta(seconds=20 + i)
                t0 = time.perf_counter()
                await asyncio.to_thread(mqtt_feed.reading, warm, 500.0 + i, when)
                while True:
                    values = [r["value"] for r in (await level.next())["readings"]]
                    if 500.0 + i in values:
                        break
                delays.append(time.perf_counter() - t0)
            await level.close()
            return delays

    delays = asyncio.run(scenario())
    median = statistics.median(delays)
    print(f"\nMQTT publish -> GraphQL subscription: median {median * 1000:.1f} ms over 20")
    assert median < 2.0


# -- model changes, events -----------------------------------------------------------------

MODEL_CHANGES = """subscription($g: [String!], $after: ID) {
  modelChanges(graphs: $g, after: $after) {
    id type ok graph author revision added removed message
  }
}"""
PUT = """mutation($g: String!, $d: String!) { putModel(graph: $g, data: $d) { __typename } }"""


def test_model_changes_see_put_model_mutations(server: Server, graph_iri: str) -> None:
    bus = server.platform.events
    assert bus is not None
    after = str(bus.last_id())
    name = f"mc{uuid.uuid4().hex[:6]}"

    async def scenario() -> list[dict[str, Any]]:
        # The token on the upgrade request this time (connection_init carries none).
        async with ws_client(server.url, server.auth("read"), in_header=True) as session:
            live = Live(session, MODEL_CHANGES, {"g": [graph_iri], "after": after})
            for data in (vav_model(name), broken_unit_model(name + "x")):
                await asyncio.to_thread(
                    http, server.url, server.auth("write"), PUT, g=graph_iri, d=data
                )
            seen = [(await live.next())["modelChanges"] for _ in range(2)]
            await live.close()
            return seen

    stored, refused = asyncio.run(scenario())
    assert stored["type"] == "model.replaced" and stored["ok"] is True
    assert stored["graph"] == graph_iri and stored["author"] == "tests"
    assert isinstance(stored["revision"], int) and stored["added"] > 5
    assert stored["removed"] == 0
    assert refused["type"] == "validation.failed" and refused["ok"] is False
    assert refused["graph"] == graph_iri and refused["message"]
    assert int(refused["id"]) > int(stored["id"]) > int(after)


EVENTS = """subscription($sel: String, $after: ID, $types: [String!]) {
  events(types: $types, selector: $sel, after: $after) {
    id type twin classes data entity { __typename id label }
  }
}"""


def test_events_follow_a_selector(server: Server) -> None:
    """ "Any VAV on level 3": events about other twins are filtered out on the server."""
    bus = server.platform.events
    assert bus is not None
    selector = (
        f"SELECT ?vav WHERE {{ ?vav a <{BRICK}VAV> ; "
        f"<{BRICK}hasLocation>/<{REC}isPartOf>+ <{DEMO}bldg/L03> }}"
    )
    after = str(bus.last_id())
    tag = uuid.uuid4().hex
    for level in ("L01", "L03"):
        bus.publish(
            Event(
                type="desired.set",
                twin=f"{DEMO}bldg/{level}/vav-02",
                classes=(BRICK + "VAV", BRICK + "Equipment"),
                data={"tag": tag, "level": level},
            )
        )

    async def scenario() -> dict[str, Any]:
        async with ws_client(server.url, server.auth("read")) as session:
            variables = {"sel": selector, "after": after, "types": ["desired.*"]}
            live = Live(session, EVENTS, variables)
            while True:
                event = (await live.next())["events"]
                if event["data"].get("tag") == tag:
                    await live.close()
                    return event

    event = asyncio.run(scenario())
    assert event["twin"] == f"{DEMO}bldg/L03/vav-02" and event["data"]["level"] == "L03"
    assert event["type"] == "desired.set" and "brick:VAV" in event["classes"]
    assert event["entity"] == {
        "__typename": "Equipment",
        "id": f"{DEMO}bldg/L03/vav-02",
        "label": "VAV-3.02",
    }


# -- refusals ------------------------------------------------------------------------------

SIMPLE = "subscription { modelChanges { id } }"


def test_subscriptions_need_a_read_token(server: Server) -> None:
    async def scenario() -> list[dict[str, Any]]:
        out = []
        for auth in (None, {"Authorization": "Bearer tg_nope_nope"}, {"Authorization": "x"}):
            async with ws_client(server.url, auth) as session:
                out.append(await first_error(session, SIMPLE))
        return out

    missing, unknown, malformed = asyncio.run(scenario())
    assert missing["extensions"]["code"] == "token_required"
    assert unknown["extensions"]["code"] == "invalid_token"
    assert malformed["extensions"]["code"] == "bad_auth_header"


def test_a_subscription_ends_when_its_token_is_revoked(server: Server) -> None:
    """The token is checked again every few seconds while a subscription is open."""
    tokens = server.platform.tokens
    token = tokens.create(Scope.READ, label="revoked while subscribed")
    bus = server.platform.events
    assert bus is not None

    async def scenario() -> dict[str, Any]:
        async with ws_client(server.url, {"Authorization": f"Bearer {token}"}) as session:
            live = Live(session, EVENTS, {"after": str(bus.last_id() - 1)})
            await live.next()  # replayed from the log: the subscription is open
            assert tokens.revoke(token.split("_")[1])
            with pytest.raises(TransportQueryError) as ended:
                while True:
                    await live.next(timeout=15)
            errors: list[dict[str, Any]] = ended.value.errors or []
            return errors[0]

    error = asyncio.run(scenario())
    assert error["extensions"]["code"] == "token_revoked"


def test_subscription_limits_and_bad_input(server: Server) -> None:
    deep = "subscription { readings { point { " + "hasPart { " * 9 + "id" + " }" * 9 + " } } }"
    costly = (
        "subscription { readings { point { hasPart { hasPart { hasPart { hasPart { id } } } } } } }"
    )

    async def scenario() -> list[dict[str, Any]]:
        async with ws_client(server.url, server.auth("read")) as session:
            return [
                await first_error(session, deep),
                await first_error(session, costly),
                await first_error(
                    session, 'subscription { readings(points: ["no such point"]) { time } }'
                ),
                await first_error(session, 'subscription { events(types: ["nope.*"]) { id } }'),
                await first_error(session, 'subscription { modelChanges(after: "x") { id } }'),
            ]

    deep_e, costly_e, unknown_e, type_e, after_e = asyncio.run(scenario())
    assert deep_e["extensions"]["code"] == "query_too_deep"
    assert costly_e["extensions"]["code"] == "query_too_costly"
    assert unknown_e["extensions"]["code"] == "unknown_points"
    assert "no such point" in unknown_e["message"]
    assert type_e["extensions"]["code"] == "unknown_event_type"
    assert after_e["extensions"]["code"] == "bad_event_id"


def test_a_subscription_stops_listening_when_completed(server: Server) -> None:
    """Cancelling on the client completes the operation: the server drops its consumer."""
    bus = server.platform.events
    assert bus is not None

    def consumers() -> set[Any]:
        return set(bus._readings_callbacks)  # noqa: SLF001 - the bus offers no listing

    before = consumers()

    async def wait_for(condition: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 10
        while not condition() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def scenario() -> tuple[set[Any], set[Any]]:
        async with ws_client(server.url, server.auth("read")) as session:
            live = Live(session, "subscription { readings { time } }")
            await wait_for(lambda: bool(consumers() - before))
            ours = consumers() - before
            await live.close()
            await wait_for(lambda: not ours & consumers())
            return ours, ours & consumers()

    ours, left = asyncio.run(scenario())
    assert len(ours) == 1
    assert left == set()


def test_queries_and_mutations_over_the_websocket_see_fresh_data(server: Server) -> None:
    """One context serves the whole connection; each operation still reads afresh."""
    point = DEMO + "bldg/L02/vav-02/zat"
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=14600)
    latest = "query($p: ID!) { entity(id: $p) { ... on Point { latest { value } } } }"
    write = "mutation($r: [ReadingInput!]!) { writeReadings(readings: $r) { inserted } }"

    async def scenario() -> list[Any]:
        seen = []
        async with ws_client(server.url, server.auth("write")) as session:
            for i in range(3):
                reading = {"point": point, "time": (base + timedelta(seconds=i)).isoformat()}
                await session.execute(
                    GraphQLRequest(write, variable_values={"r": [{**reading, "value": i}]})
                )
                data = await session.execute(GraphQLRequest(latest, variable_values={"p": point}))
                seen.append(data["entity"]["latest"]["value"])
        return seen

    assert asyncio.run(scenario()) == [0, 1, 2]


def test_a_selection_follows_model_changes(server: Server, graph_iri: str) -> None:
    """Points added to the model after subscribing are followed once the change commits."""
    anchor = DEMO + "bldg/L02/vav-03/zat"  # proves the subscription is live first
    name = f"sel{uuid.uuid4().hex[:6]}"
    series = str(uuid.uuid4())
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=12000)
    query = """subscription($p: [ID!], $w: ID) {
      readings(points: $p, within: $w, type: "brick:Zone_Air_Temperature_Sensor") {
        value point { id }
      }
    }"""
    write = "mutation($r: [ReadingInput!]!) { writeReadings(readings: $r) { inserted } }"

    def reading(point: str, i: int) -> None:
        at = (base + timedelta(milliseconds=i)).isoformat()
        http(server.url, server.auth("write"), write, r=[{"point": point, "time": at, "value": i}])

    async def scenario() -> dict[str, Any]:
        async with ws_client(server.url, server.auth("read")) as session:
            live = Live(session, query, {"p": [anchor], "w": f"urn:ex:{name}"})
            await until_live(live, lambda i: asyncio.to_thread(reading, anchor, i))
            put = "mutation($g: String!, $d: String!) { putModel(graph: $g, data: $d) { __typename } }"
            data = vav_model(name, ts=series)
            await asyncio.to_thread(
                http, server.url, server.auth("write"), put, g=graph_iri, d=data
            )
            while True:  # drain the anchor's warm-up readings, then poke the new point
                try:
                    await live.next(timeout=0.3)
                except TimeoutError:
                    break
            found = await until_live(live, lambda i: asyncio.to_thread(reading, series, 1000 + i))
            await live.close()
            first: dict[str, Any] = found["readings"][0]
            return first

    first = asyncio.run(scenario())
    assert first["point"] == {"id": f"urn:ex:{name}-zat"}
