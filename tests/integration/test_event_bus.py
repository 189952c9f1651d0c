"""The event bus across processes (PostgreSQL LISTEN/NOTIFY) and out to a real MQTT broker,
and event filters run in SQL over a log where the matches are far apart."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import ConnectionPool

from app.domain.telemetry import Reading
from app.events.bus import EventBus, select_events
from app.events.model import Event, EventFilter
from app.events.mqtt_sink import MqttEventSink
from app.platform import Platform
from app.telemetry.broker import LocalMosquitto
from app.telemetry.db import connect_pool, migrate
from tests.conftest import PgServer
from tests.integration.test_mqtt_ingest import Client, broker, eventually

__all__ = ["broker"]  # the fixture, reused

REPO = Path(__file__).resolve().parents[2]


@dataclass
class BusDb:
    """A migrated database of its own (no other test's events in its log) and its bus."""

    dsn: str
    pool: ConnectionPool
    bus: EventBus


@pytest.fixture(scope="module")
def bus_db(pg_server: PgServer, request: pytest.FixtureRequest) -> Iterator[BusDb]:
    dsn = pg_server.database(f"bus_{request.module.__name__.rsplit('.', 1)[-1]}")
    pool = connect_pool(dsn, max_size=6, timeout_s=5)
    migrate(pool)
    bus = EventBus(pool)
    try:
        yield BusDb(dsn, pool, bus)
    finally:
        bus.stop()
        pool.close()


def _other_process(dsn: str, code: str) -> None:
    """Run ``code`` in a fresh interpreter with ``bus`` (its own EventBus) and ``store``."""
    prelude = (
        "from app.telemetry.db import connect_pool\n"
        "from app.events.bus import EventBus\n"
        "from app.events.model import Event\n"
        "from app.telemetry.readings import open_store\n"
        "from app.domain.telemetry import Reading\n"
        "import uuid, datetime\n"
        f"pool = connect_pool({dsn!r})\n"
        "bus = EventBus(pool)\n"
        "store = open_store(pool)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", prelude + code],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_events_and_readings_from_another_process_reach_this_one(platform: Platform) -> None:
    bus = platform.events
    assert bus is not None and platform.settings.database_url is not None
    bus.start()
    assert bus.listening
    twin = f"urn:ex:twin-{uuid.uuid4().hex[:8]}"
    point = uuid.uuid4()
    seen: list[Event] = []
    readings: list[Reading] = []
    lock = threading.Lock()

    def on_event(event: Event) -> None:
        if event.twin == twin:
            with lock:
                seen.append(event)

    def on_readings(batch: list[Reading]) -> None:
        with lock:
            readings.extend(r for r in batch if r.point == point)

    undo_events, undo_readings = bus.on_event(on_event), bus.on_readings(on_readings)
    try:
        _other_process(
            platform.settings.database_url,
            "for i in range(3):\n"
            f"    bus.publish(Event(type='reported', twin={twin!r}, data={{'i': i}}))\n"
            f"store.write(readings=[Reading(uuid.UUID({str(point)!r}), "
            "datetime.datetime(2092, 1, 1, tzinfo=datetime.timezone.utc), 7.5)])\n",
        )
        eventually(lambda: len(seen) == 3 and len(readings) == 1)
    finally:
        undo_events()
        undo_readings()
    assert [e.data["i"] for e in seen] == [0, 1, 2]  # in order
    assert [e.id for e in seen] == sorted(e.id for e in seen if e.id is not None)
    assert readings == [Reading(point, datetime(2092, 1, 1, tzinfo=UTC), 7.5)]
    # The log holds them too, for consumers that reconnect.
    stored = bus.fetch(after_id=(seen[0].id or 0) - 1, filter=EventFilter.of(twins=[twin]))
    assert [e.data["i"] for e in stored] == [0, 1, 2]


def test_events_go_out_to_mqtt(platform: Platform, broker: LocalMosquitto) -> None:
    assert platform.db is not None
    bus = EventBus(platform.db)
    watcher = Client(broker.url, watch="twingraph/events/command/#")
    sink = MqttEventSink(broker.url)
    sink.attach(bus)
    try:
        bus.publish(Event(type="reported", twin="urn:ex:a"))  # not watched
        stored = bus.publish(Event(type="command.expired", twin="urn:ex:a", data={"n": 1}))
        eventually(lambda: len(watcher.messages) == 1)
    finally:
        sink.detach(bus)
        watcher.close()
    message = watcher.messages[0]
    assert message["id"] == stored.id and message["type"] == "command.expired"
    assert message["twin"] == "urn:ex:a" and message["data"] == {"n": 1}


# -- filters in SQL -----------------------------------------------------------------------

RARE = "urn:ex:rare-twin"


def _fill(db: BusDb, n: int = 20_000, every: int = 2_000) -> int:
    """``n`` events of which every ``every``-th is "rare" (its own twin, graph, site and
    class; a third ``command.failed``, a third ``weird_x.c``, half refused); returns the
    id before them. Filler types include ``weirdAx.b``, which LIKE 'weird_x.%' would match
    were ``_`` not escaped."""
    start = db.bus.last_id()
    with db.pool.connection() as conn:
        conn.execute(
            """
            INSERT INTO events (type, ok, twin, graph, site, classes, data)
            SELECT
              CASE WHEN g %% %(e)s = 0
                THEN (ARRAY['command.failed', 'device.rejected', 'weird_x.c'])[1 + (g / %(e)s) %% 3]
                ELSE (ARRAY['reported', 'desired.set', 'weirdAx.b', 'device.online'])[1 + g %% 4]
              END,
              NOT (g %% %(e)s = 0 AND (g / %(e)s) %% 2 = 0),
              CASE WHEN g %% %(e)s = 0 THEN %(rare)s ELSE 'urn:ex:filler-' || g %% 50 END,
              CASE WHEN g %% %(e)s = 0 THEN 'urn:g:rare' ELSE 'urn:g:' || g %% 5 END,
              CASE WHEN g %% %(e)s = 0 THEN 'urn:site:rare'
                   WHEN g %% 3 = 0 THEN NULL ELSE 'urn:site:' || g %% 4 END,
              CASE WHEN g %% %(e)s = 0 THEN ARRAY['urn:c:Equipment', 'urn:c:Rare']
                   ELSE ARRAY['urn:c:Equipment', 'urn:c:X' || g %% 7] END,
              jsonb_build_object('g', g)
            FROM generate_series(1, %(n)s) AS g
            """,
            {"n": n, "e": every, "rare": RARE},
        )
        conn.commit()
        conn.execute("ANALYZE events")
        conn.commit()
    return start


def _rows_read(plan: dict[str, Any]) -> int:
    """Rows the scans of an EXPLAIN ANALYZE plan produced or threw away."""
    total = 0
    if "Scan" in plan["Node Type"] and plan.get("Relation Name") == "events":
        kept = plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)
        total += int((kept + plan.get("Rows Removed by Index Recheck", 0)) * plan["Actual Loops"])
    return total + sum(_rows_read(child) for child in plan.get("Plans", ()))


def test_selective_filters_page_in_sql_like_the_python_filter(bus_db: BusDb) -> None:
    bus = bus_db.bus
    start = _fill(bus_db)
    every = bus.fetch(after_id=start, limit=100_000)
    assert len(every) == 20_000

    def pages(flt: EventFilter, size: int) -> list[Event]:
        out, after = [], start
        while True:
            page = bus.fetch(after_id=after, filter=flt, limit=size)
            out += page
            if len(page) < size:
                return out
            after = page[-1].id or after

    cases = {
        "twin": (EventFilter.of(twins=[RARE, "urn:ex:never"]), 10),
        "graph": (EventFilter.of(graphs=["urn:g:rare"]), 10),
        "site": (EventFilter.of(sites=["urn:site:rare"]), 10),
        "refused": (EventFilter.of(ok=False), 5),
        "class": (EventFilter.of(classes=["urn:c:Rare", "urn:c:Nowhere"]), 10),
        "type family": (EventFilter.of(types=["command.*"]), 3),
        "escaped family": (EventFilter.of(types=["weird_x.*"]), 3),
        "combined": (
            EventFilter.of(
                types=["command.*", "device.rejected"], ok=False, classes=["urn:c:Rare"]
            ),
            3,
        ),
        "broad": (EventFilter.of(types=["reported", "device.*"], sites=["urn:site:1"]), None),
        "no twins": (EventFilter.of(twins=[]), 0),
        "NUL": (EventFilter.of(twins=["urn:ex:\x00"], types=["reported\x00"]), 0),
    }
    for name, (flt, expected) in cases.items():
        reference = [e for e in every if flt.matches(e)]
        if expected is not None:
            assert len(reference) == expected, name
        # A full page straight away, in log order, equal to the Python filter's answer.
        page = bus.fetch(after_id=start, filter=flt, limit=3)
        assert page == reference[:3], name
        assert len(page) == min(3, len(reference)), name
        assert [e.id for e in page] == sorted(e.id for e in page if e.id is not None), name
        assert pages(flt, 2) == reference, name
    assert select_events(filter=EventFilter.of(twins=[])) is None

    # The selective ones read a few rows through an index, not the 20,000 of the log.
    for name in ("twin", "graph", "site", "refused", "class", "type family", "combined"):
        query = select_events(after_id=start, filter=cases[name][0], limit=3)
        assert query is not None
        with bus_db.pool.connection() as conn:
            row = conn.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query[0]}", query[1]).fetchone()
        assert row is not None
        plan = row[0][0]["Plan"] if isinstance(row[0], list) else json.loads(row[0])[0]["Plan"]
        assert _rows_read(plan) < 200, (name, plan)
