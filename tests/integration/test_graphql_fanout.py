"""Subscriptions fan out across API processes: process A is the test's server, process B a
`twingraph serve` started here on the same Oxigraph server and PostgreSQL database. What
is written through one reaches subscriptions held on the other (PostgreSQL LISTEN/NOTIFY).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.security.tokens import Scope, TokenStore
from app.telemetry.ports import free_port
from tests.api.test_graphql_subscriptions import Live, http, until_live, ws_client
from tests.conftest import REPO, Server
from tests.factories import vav_model

# Both processes share one graph store: only the remote (`oxigraph serve`) mode can.
pytestmark = pytest.mark.parametrize("store_mode", ["remote"], indirect=True)

POINT = "urn:twingraph:demo:bldg/L02/vav-01/zat"


@dataclass
class ProcessB:
    url: str
    auth: dict[str, str]


@pytest.fixture(scope="module")
def process_b(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessB]:
    settings = server.platform.settings
    assert settings.graph_url and settings.database_url
    data = tmp_path_factory.mktemp("process-b")
    token = TokenStore(data / "tokens.sqlite3").create(Scope.WRITE, label="process b")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWINGRAPH_")}
    env |= {
        "TWINGRAPH_GRAPH_URL": settings.graph_url,
        "TWINGRAPH_DATABASE_URL": settings.database_url,
    }
    log = (data / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port), "--data-dir", str(data)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, Path(log.name).read_text()[-3000:]
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "process B did not start"
            time.sleep(0.2)
        yield ProcessB(url, {"Authorization": f"Bearer {token}"})
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


WRITE = "mutation($r: [ReadingInput!]!) { writeReadings(readings: $r) { inserted } }"
READINGS = "subscription($p: [ID!]) { readings(points: $p) { value point { id } } }"


def test_readings_written_through_a_reach_a_subscription_on_b(
    server: Server, process_b: ProcessB
) -> None:
    base = datetime.now(UTC).replace(microsecond=0) + timedelta(days=7300)

    def write(value: float, at: datetime) -> None:
        readings = [{"point": POINT, "time": at.isoformat(), "value": value}]
        assert http(server.url, server.auth("write"), WRITE, r=readings) == {
            "writeReadings": {"inserted": 1}
        }

    async def scenario() -> list[float]:
        async with ws_client(process_b.url, process_b.auth) as session:
            live = Live(session, READINGS, {"p": [POINT]})

            async def poke(i: int) -> None:
                await asyncio.to_thread(write, -1.0, base + timedelta(milliseconds=i))

            await until_live(live, poke)
            delays = []
            for i in range(10):
                t0 = time.perf_counter()
                await asyncio.to_thread(write, float(i), base + timedelta(seconds=10 + i))
                while True:
                    batch = (await live.next())["readings"]
                    assert {r["point"]["id"] for r in batch} == {POINT}
                    if float(i) in [r["value"] for r in batch]:
                        break
                delays.append(time.perf_counter() - t0)
            await live.close()
            return delays

    delays = asyncio.run(scenario())
    median = statistics.median(delays)
    print(f"\nGraphQL write on A -> subscription on B: median {median * 1000:.1f} ms over 10")
    assert median < 2.0


CHANGES = "subscription($g: [String!], $after: ID) { modelChanges(graphs: $g, after: $after) { type graph author } }"
PUT = "mutation($g: String!, $d: String!) { putModel(graph: $g, data: $d) { __typename } }"


def test_a_model_change_through_b_reaches_a_subscription_on_a(
    server: Server, process_b: ProcessB, graph_iri: str
) -> None:
    bus = server.platform.events
    assert bus is not None
    after = str(bus.last_id())
    name = f"fan{uuid.uuid4().hex[:6]}"

    async def scenario() -> dict[str, Any]:
        async with ws_client(server.url, server.auth("read")) as session:
            live = Live(session, CHANGES, {"g": [graph_iri], "after": after})
            await asyncio.to_thread(
                http, process_b.url, process_b.auth, PUT, g=graph_iri, d=vav_model(name)
            )
            change = (await live.next())["modelChanges"]
            await live.close()
            return change

    change = asyncio.run(scenario())
    assert change == {"type": "model.replaced", "graph": graph_iri, "author": "process b"}
    # Process A's own store answers for the model B wrote (the same Oxigraph server).
    found = http(server.url, server.auth("read"), f'{{ entity(id: "urn:ex:{name}") {{ label }} }}')
    assert found == {"entity": {"label": f"VAV {name}"}}
