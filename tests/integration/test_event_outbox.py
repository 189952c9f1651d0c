"""The transactional outbox: a change and its event commit together, or neither does.

Real PostgreSQL throughout: a rolled-back, failed-at-commit or crashed transaction leaves
no event row and sends no notification; a committed one publishes exactly once, sinks and
twin listeners run after the commit (another connection already sees the change), and
ids reach the listener thread in order while transactions commit concurrently.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from app.errors import UnavailableError
from app.events.bus import CHANNEL
from app.events.model import Event, EventFilter
from app.platform import Platform
from tests.integration.test_event_bus import REPO, BusDb, bus_db
from tests.integration.test_twins import Building

__all__ = ["bus_db"]  # the fixture, reused


@pytest.fixture(scope="module")
def state_table(bus_db: BusDb) -> str:
    """A table standing for the caller's state; ``k`` is unique only at commit."""
    with bus_db.pool.connection() as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS outbox_state (k text, v integer, "
            "CONSTRAINT outbox_state_k UNIQUE (k) DEFERRABLE INITIALLY DEFERRED)"
        )
    return "outbox_state"


class Listener:
    """A LISTEN connection of its own: what notifications reach a listener."""

    def __init__(self, dsn: str) -> None:
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute(f"LISTEN {CHANNEL}")

    def until(self, event_id: int, timeout: float = 10.0) -> list[int]:
        """Payloads received up to and including ``event_id`` (notifications arrive in
        commit order, so anything published before it has arrived by then)."""
        got: list[int] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for note in self.conn.notifies(timeout=0.5):
                got.append(int(note.payload))
                if got[-1] == event_id:
                    return got
        raise AssertionError(f"notification {event_id} did not arrive (got {got})")

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def listener(bus_db: BusDb) -> Iterator[Listener]:
    lst = Listener(bus_db.dsn)
    try:
        yield lst
    finally:
        lst.close()


def _rows(db: BusDb, twin: str) -> list[tuple[int, str]]:
    with db.pool.connection() as conn:
        return conn.execute(
            "SELECT id, type FROM events WHERE twin = %s ORDER BY id", (twin,)
        ).fetchall()


def _state(db: BusDb, key: str) -> list[int]:
    with db.pool.connection() as conn:
        return [r[0] for r in conn.execute("SELECT v FROM outbox_state WHERE k = %s", (key,))]


def test_what_does_not_commit_publishes_nothing(
    bus_db: BusDb, state_table: str, listener: Listener
) -> None:
    bus, twin = bus_db.bus, f"urn:ex:{uuid.uuid4().hex[:8]}"
    sunk: list[Event] = []
    bus.sinks.append(sunk.append)
    try:
        # 1. The body fails after the event is stored in its transaction: rolled back.
        with (
            pytest.raises(RuntimeError),
            bus_db.pool.connection() as conn,
            conn.transaction(),
        ):
            conn.execute("INSERT INTO outbox_state VALUES (%s, 1)", (twin,))
            (stored,) = bus.publish_in(conn, [Event(type="reported", twin=twin)])
            assert stored.id is not None and _rows(bus_db, twin) == []  # not visible yet
            raise RuntimeError("the caller fails after the event insert")
        # 2. The commit itself fails (a deferred constraint), after the outbox stored the
        #    event and queued its notification.
        with (
            pytest.raises(psycopg.errors.UniqueViolation),
            bus_db.pool.connection() as conn,
            bus.outbox(conn) as box,
        ):
            conn.execute("INSERT INTO outbox_state VALUES (%s, 2), (%s, 3)", (twin, twin))
            box.add(Event(type="reported", twin=twin, data={"case": "commit fails"}))
        assert box.published == []
        # 3. The process dies inside the transaction, after the event insert.
        crash = subprocess.run(
            [
                sys.executable,
                "-c",
                "import os\n"
                "from app.telemetry.db import connect_pool\n"
                "from app.events.bus import EventBus\n"
                "from app.events.model import Event\n"
                f"pool = connect_pool({bus_db.dsn!r})\n"
                "with pool.connection() as conn, conn.transaction():\n"
                f'    conn.execute("INSERT INTO outbox_state VALUES ({twin!r}, 4)")\n'
                f"    EventBus(pool).publish_in(conn, [Event(type='reported', twin={twin!r})])\n"
                "    os._exit(3)\n",
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert crash.returncode == 3, crash.stderr
    finally:
        bus.sinks.remove(sunk.append)
    # A committed event after all that: the only notification before it is none at all.
    sentinel = bus.publish(Event(type="reported", twin=twin, data={"sentinel": True}))
    assert sentinel.id is not None
    assert listener.until(sentinel.id) == [sentinel.id]
    assert _rows(bus_db, twin) == [(sentinel.id, "reported")]
    assert _state(bus_db, twin) == [] and sunk == []


def test_a_committed_change_publishes_exactly_once_after_the_commit(
    bus_db: BusDb, state_table: str, listener: Listener
) -> None:
    bus, twin = bus_db.bus, f"urn:ex:{uuid.uuid4().hex[:8]}"
    bus.start()
    dispatched: list[Event] = []
    seen_by_sink: list[tuple[int | None, list[int], list[int]]] = []

    def sink(event: Event) -> None:
        # Runs after the commit: another connection sees the state and the event row.
        if event.twin == twin:
            ids = [i for i, _t in _rows(bus_db, twin)]
            seen_by_sink.append((event.id, _state(bus_db, twin), ids))

    def on_event(event: Event) -> None:
        if event.twin == twin:
            dispatched.append(event)

    bus.sinks.append(sink)
    undo = bus.on_event(on_event)
    try:
        with bus_db.pool.connection() as conn:
            with bus.outbox(conn) as box:
                conn.execute("INSERT INTO outbox_state VALUES (%s, 7)", (twin,))
                box.add(Event(type="desired.set", twin=twin, data={"n": 1}))
                box.add(None)  # an optional event that did not happen
                box.add(Event(type="synced", twin=twin, data={"n": 2}))
                assert seen_by_sink == []  # nothing runs before the commit
            with pytest.raises(RuntimeError, match="outside a transaction"):
                conn.execute("SELECT 1")
                with bus.outbox(conn):
                    pass
            conn.rollback()
        first, second = box.published
        assert first.id is not None and second.id == first.id + 1
        assert [e.data for e in box.published] == [{"n": 1}, {"n": 2}]
        assert seen_by_sink == [
            (first.id, [7], [first.id, second.id]),
            (second.id, [7], [first.id, second.id]),
        ]
        # One notification for the transaction; the listener thread dispatches each once.
        assert listener.until(second.id) == [second.id]
        eventually_equal(lambda: [e.id for e in dispatched], [first.id, second.id])
        time.sleep(0.3)
        assert [e.id for e in dispatched] == [first.id, second.id]
        assert _rows(bus_db, twin) == [(first.id, "desired.set"), (second.id, "synced")]
        # An outbox with nothing to publish takes no lock and sends nothing.
        with bus_db.pool.connection() as conn, bus.outbox(conn) as empty:
            conn.execute("UPDATE outbox_state SET v = 8 WHERE k = %s", (twin,))
        assert empty.published == [] and _state(bus_db, twin) == [8]
    finally:
        undo()
        bus.sinks.remove(sink)


def eventually_equal(get: object, expected: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while (value := get()) != expected:  # type: ignore[operator]
        assert time.monotonic() < deadline, f"{value!r} != {expected!r}"
        time.sleep(0.02)


def test_concurrent_transactions_reach_the_listener_in_id_order(
    bus_db: BusDb, state_table: str
) -> None:
    """Publishers that interleave (a pause inside each transaction) and sometimes roll
    back: the listener thread's ``id > last seen`` catch-up still gets every committed
    event once, in id order."""
    bus, twin = bus_db.bus, f"urn:ex:{uuid.uuid4().hex[:8]}"
    bus.start()
    dispatched: list[int] = []
    undo = bus.on_event(lambda e: dispatched.append(e.id or 0) if e.twin == twin else None)
    committed: list[int] = []
    lock = threading.Lock()

    def publisher(seed: int) -> None:
        rng = random.Random(seed)
        for i in range(15):
            try:
                with bus_db.pool.connection() as conn, bus.outbox(conn) as box:
                    conn.execute(
                        "INSERT INTO outbox_state VALUES (%s, %s)", (f"{twin}-{seed}-{i}", i)
                    )
                    box.add(Event(type="reported", twin=twin, data={"seed": seed, "i": i}))
                    time.sleep(rng.random() * 0.004)
                    if rng.random() < 0.2:
                        raise LookupError("rolled back")
                with lock:
                    committed.extend(e.id or 0 for e in box.published)
            except LookupError:
                pass

    try:
        threads = [threading.Thread(target=publisher, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        eventually_equal(lambda: len(dispatched), len(committed))
    finally:
        undo()
    assert dispatched == sorted(committed) and len(set(dispatched)) == len(committed)
    assert [i for i, _t in _rows(bus_db, twin)] == sorted(committed)


# -- twin operations ------------------------------------------------------------------------


@pytest.mark.parametrize("store_mode", ["embedded"], indirect=True)
def test_twin_changes_and_their_events_commit_together(platform: Platform) -> None:
    twins, bus, pool = platform.twins, platform.events, platform.db
    assert twins is not None and bus is not None and pool is not None
    building = Building(platform, f"o{uuid.uuid4().hex[:8]}")
    state, _secret = twins.create(entity=building.iri("vav"))
    iri = state.iri
    heard: list[tuple[str, bool, object]] = []

    def listener(event: Event) -> None:
        # Reads the twin from another pool connection: the change must be committed.
        if event.twin == iri:
            desired = twins.get(state.id).properties.get("vav.v1.Mode")
            heard.append(
                (
                    event.type,
                    event.ok,
                    desired.desired.value if desired and desired.desired else None,
                )
            )

    twins.listeners.append(listener)
    with pool.connection() as conn:
        conn.execute(
            """
            CREATE OR REPLACE FUNCTION outbox_test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.desired = '"refused-at-commit"'::jsonb THEN
                RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001';
              END IF;
              RETURN NULL;
            END $$;
            CREATE CONSTRAINT TRIGGER outbox_test_refuse AFTER INSERT OR UPDATE
              ON twin_properties DEFERRABLE INITIALLY DEFERRED
              FOR EACH ROW EXECUTE FUNCTION outbox_test_refuse();
            """
        )
    try:
        twins.set_desired(state.id, {"vav.v1.Mode": "eco"})
        assert heard == [("desired.set", True, "eco")]
        # The change fails at commit, after its event was stored: neither stays. The
        # refusal is published on its own (ok=false), with nothing to commit.
        with pytest.raises(UnavailableError):
            twins.set_desired(state.id, {"vav.v1.Mode": "refused-at-commit"})
        after = twins.get(state.id)
        assert after.desired_version == 1 and after.properties["vav.v1.Mode"].desired
        assert after.properties["vav.v1.Mode"].desired.value == "eco"
        events = bus.fetch(filter=EventFilter.of(twins=[iri], types=["desired.*"]))
        assert [(e.type, e.ok, e.data.get("version")) for e in events] == [
            ("desired.set", True, 1),
            ("desired.set", False, None),
        ]
        assert heard == [("desired.set", True, "eco"), ("desired.set", False, "eco")]
        # Device status, reported state and command transitions: one event each, after
        # the commit.
        heard.clear()
        twins.heartbeat(state.id, transport="http")
        twins.report(state.id, {"vav.v1.Mode": "eco"}, source="device")
        cmd, _created = twins.commands.send(state.id, name="flush")
        twins.commands.acknowledge(state.id, cmd.id)
        twins.commands.complete(state.id, cmd.id, ok=True)
        assert [(t, ok) for t, ok, _v in heard] == [
            ("device.online", True),
            ("reported", True),
            ("synced", True),
            ("command.queued", True),
            ("command.delivered", True),  # answered before it was marked delivered
            ("command.acknowledged", True),
            ("command.succeeded", True),
        ]
        types = [
            e.type
            for e in bus.fetch(after_id=events[-1].id or 0, filter=EventFilter.of(twins=[iri]))
        ]
        assert types == [t for t, _ok, _v in heard]
    finally:
        twins.listeners.remove(listener)
        with pool.connection() as conn:
            conn.execute("DROP TRIGGER outbox_test_refuse ON twin_properties")
            conn.execute("DROP FUNCTION outbox_test_refuse()")
