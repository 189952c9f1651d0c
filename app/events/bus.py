"""The event bus: durable events in PostgreSQL, fanned out to every process by NOTIFY.

An event is a row of ``events`` plus a notification on ``twingraph_events``, both made in
a transaction under a transaction-scoped advisory lock, so ids commit in increasing order.
A change of PostgreSQL state publishes in the *same* transaction as the change
(``outbox``, a transactional outbox): NOTIFY is transactional, so the change and its
event commit together or neither does, and a crash in between cannot lose the event.
What has no state to commit with (a refusal, a graph-store change) uses ``publish``.

Each process runs one listener thread (``start``) with its own connection: on a
notification it reads the events after the last id it saw and hands them to its
in-process consumers — asyncio subscriptions (SSE, GraphQL) and plain callbacks (twin
services). Committed readings arrive on ``twingraph_readings`` (see
``app.telemetry.notify``) the same way.

A consumer that falls behind (its queue is full) or reconnects with ``after_id`` reads
what it missed from the table, so nothing in between is lost; readings are live only.
Sinks (e.g. the MQTT bridge) run in the publishing process, after the commit, so each
event leaves once, and only once it is stored.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.pq import TransactionStatus
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from app.domain.telemetry import Reading
from app.events.model import Event, EventFilter
from app.telemetry import notify
from app.telemetry.db import translate_errors

log = logging.getLogger("twingraph.events")

CHANNEL = "twingraph_events"
#: pg_advisory_xact_lock key serialising publishers ("TwinGraph events").
PUBLISH_LOCK_KEY = 0x7467_6576
QUEUE_SIZE = 10_000
_COLUMNS = "id, time, type, ok, twin, graph, site, classes, author, data"

Conn = psycopg.Connection[Any]
EventCallback = Callable[[Event], None]
ReadingsCallback = Callable[[list[Reading]], None]


def _row_event(row: tuple[Any, ...]) -> Event:
    id_, time, type_, ok, twin, graph, site, classes, author, data = row
    return Event(
        type=type_,
        data=data or {},
        twin=twin,
        graph=graph,
        site=site,
        classes=tuple(classes or ()),
        ok=ok,
        author=author,
        id=id_,
        time=time,
    )


_INSERT = (
    "INSERT INTO events (type, ok, twin, graph, site, classes, author, data) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING id, time"
)


def _params(event: Event) -> tuple[Any, ...]:
    return (
        event.type,
        event.ok,
        event.twin,
        event.graph,
        event.site,
        list(event.classes),
        event.author,
        Jsonb(dict(event.data)),
    )


def _storable(values: Iterable[str]) -> list[str]:
    # PostgreSQL text cannot hold NUL, so no stored event has a value containing one.
    return sorted(v for v in values if "\x00" not in v)


def filter_clauses(flt: EventFilter) -> tuple[list[str], list[Any]] | None:
    """SQL conditions selecting exactly the events ``flt.matches``; None when it can match
    none. Every criterion has an SQL form: types (exact, and ``family.*`` as the byte-wise
    range ['family.', 'family/'), which is exactly the strings starting with 'family.' and
    an index range, unlike LIKE with a parameter), twins, sites and graphs (``= ANY``),
    classes (array overlap ``&&``: an event carries its twin's classes with their
    superclasses, a filter the classes asked for, and ``matches`` takes any shared one),
    ok. Nothing is left to filter in Python; live dispatch (``EventSubscription``) still
    applies ``flt.matches`` to the events in memory."""
    clauses: list[str] = []
    params: list[Any] = []
    if flt.types:
        arms: list[str] = []
        exact = _storable(t for t in flt.types if not t.endswith(".*"))
        if exact:
            arms.append("type = ANY(%s)")
            params.append(exact)
        for family in _storable(t[:-2] for t in flt.types if t.endswith(".*")):
            # The text_pattern_ops operators compare bytes, whatever the collation.
            arms.append("(type ~>=~ %s AND type ~<~ %s)")
            params += [family + ".", family + "/"]
        if not arms:
            return None
        clauses.append(f"({' OR '.join(arms)})")
    # ``twins`` None is no criterion, an empty set matches nothing; the others are
    # criteria only when not empty.
    criteria = [
        ("twin = ANY(%s)", flt.twins),
        ("site = ANY(%s)", flt.sites or None),
        ("graph = ANY(%s)", flt.graphs or None),
        ("classes && %s::text[]", flt.classes or None),
    ]
    for clause, wanted in criteria:
        if wanted is None:
            continue
        values = _storable(wanted)
        if not values:
            return None
        clauses.append(clause)
        params.append(values)
    if flt.ok is not None:
        clauses.append("ok" if flt.ok else "NOT ok")  # literal: matches the partial index
    return clauses, params


def select_events(
    *,
    after_id: int = 0,
    filter: EventFilter | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 1000,
) -> tuple[str, list[Any]] | None:
    """The query of ``EventBus.fetch`` (None: nothing can match), for EXPLAIN in tests."""
    clauses: list[str] = ["id > %s"]
    params: list[Any] = [after_id]
    if since is not None:
        clauses.append("time >= %s")
        params.append(since)
    if until is not None:
        clauses.append("time <= %s")
        params.append(until)
    if filter is not None:
        found = filter_clauses(filter)
        if found is None:
            return None
        clauses += found[0]
        params += found[1]
    where = " AND ".join(clauses)
    sql = f"SELECT {_COLUMNS} FROM events WHERE {where} ORDER BY id LIMIT {int(limit)}"  # noqa: S608
    return sql, params


class Outbox:
    """The events of one transaction of the caller (see ``EventBus.outbox``)."""

    def __init__(self, conn: Conn) -> None:
        self.conn = conn
        self.pending: list[Event] = []
        #: The stored events (with ids and times), once the transaction has committed.
        self.published: list[Event] = []

    def add(self, event: Event | None) -> None:
        """Publish ``event`` with the transaction (None: nothing, for optional events)."""
        if event is not None:
            self.pending.append(event)


class EventBus:
    def __init__(self, pool: ConnectionPool, *, dsn: str | None = None) -> None:
        self._pool = pool
        self._dsn = dsn or str(pool.conninfo)
        self._event_callbacks: list[EventCallback] = []
        self._readings_callbacks: list[ReadingsCallback] = []
        self.sinks: list[EventCallback] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._listening = threading.Event()
        self._last_id = 0

    # -- publishing ------------------------------------------------------------------------

    def publish(self, event: Event) -> Event:
        """Store ``event`` in a transaction of its own and announce it; returns it with its
        id and time. For what has no state to commit with it: a refusal (``ok=False``), a
        change of the graph store. A change of PostgreSQL state publishes through
        ``outbox`` instead, so that the change and its event commit together."""
        with (
            translate_errors("event publish"),
            self._pool.connection() as conn,
            conn.transaction(),
        ):
            # Nothing else commits with this event, so it need not wait for the WAL flush
            # (a database crash can lose the last instant of such events, never state).
            conn.execute("SET LOCAL synchronous_commit = off")
            (stored,) = self.publish_in(conn, [event])
        self.announce([stored])
        return stored

    @contextmanager
    def outbox(self, conn: Conn) -> Iterator[Outbox]:
        """A transaction on ``conn`` whose events commit with it, or not at all.

        The body makes its change on ``box.conn`` and ``box.add``s the events describing
        it; when the body returns, the events are stored (``publish_in``) and the
        transaction commits; the sinks then run (``announce``) and ``box.published`` holds
        the stored events. When the body raises, or the commit fails, the transaction
        rolls back: no row, no notification, no sink call. ``conn`` must not be inside a
        transaction already (the events would then commit with an outer one)."""
        if conn.info.transaction_status != TransactionStatus.IDLE:
            raise RuntimeError("EventBus.outbox needs a connection outside a transaction")
        box = Outbox(conn)
        with conn.transaction():
            yield box
            # Last, right before the commit: the publish lock is held from here to the end
            # of the transaction, so nothing else may happen under it.
            stored = self.publish_in(conn, box.pending)
        box.pending = []
        box.published = stored
        self.announce(stored)

    def publish_in(self, conn: Conn, events: Sequence[Event]) -> list[Event]:
        """Insert ``events`` and their notification into the open transaction of ``conn``;
        returns them with ids and times. The notification is delivered when (and only if)
        that transaction commits; the caller then calls ``announce``.

        Takes the publish lock, which stays held until the transaction ends: ids are
        assigned and become visible in the same order, which the listener's ``id >
        last seen`` catch-up relies on. Hence: call it as the transaction's last step."""
        if not events:
            return []
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (PUBLISH_LOCK_KEY,))
        rows: list[tuple[int, datetime]] = []
        with conn.cursor() as cur:
            cur.executemany(_INSERT, [_params(e) for e in events], returning=True)
            while True:
                row = cur.fetchone()
                assert row is not None
                rows.append((row[0], row[1]))
                if not cur.nextset():
                    break
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(rows[-1][0])))
        return [event.stored(id_, time) for event, (id_, time) in zip(events, rows, strict=True)]

    def announce(self, events: Sequence[Event]) -> None:
        """Hand committed events to the sinks of this process (each event leaves once, from
        the process that made it); a failing sink is logged, never raised."""
        for stored in events:
            for sink in list(self.sinks):
                try:
                    sink(stored)
                except Exception:  # a sink failing must not fail the operation that emitted
                    log.exception("event sink failed for %s", stored.type)

    def publish_safely(self, event: Event) -> Event | None:
        """``publish`` for paths whose own work already succeeded: errors are logged."""
        try:
            return self.publish(event)
        except Exception:
            log.exception("could not publish %s", event.type)
            return None

    # -- reading the log -------------------------------------------------------------------

    def fetch(
        self,
        *,
        after_id: int = 0,
        filter: EventFilter | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[Event]:
        """Stored events after ``after_id`` in id order, at most ``limit``. The filter runs
        in SQL (``select_events``), so a page is full whenever that many events match."""
        query = select_events(
            after_id=after_id, filter=filter, since=since, until=until, limit=limit
        )
        if query is None:
            return []
        with translate_errors("event read"), self._pool.connection() as conn:
            rows = conn.execute(*query).fetchall()
        return [_row_event(row) for row in rows]

    def last_id(self) -> int:
        with translate_errors("event read"), self._pool.connection() as conn:
            row = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()
        return int(row[0]) if row else 0

    def prune(self, older_than: timedelta) -> int:
        with translate_errors("event prune"), self._pool.connection() as conn:
            cur = conn.execute("DELETE FROM events WHERE time < now() - %s", (older_than,))
            return cur.rowcount

    # -- consuming -------------------------------------------------------------------------

    def on_event(self, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback`` (on the listener thread) for every event; returns an undo."""
        with self._lock:
            self._event_callbacks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._event_callbacks:
                    self._event_callbacks.remove(callback)

        return remove

    def on_readings(self, callback: ReadingsCallback) -> Callable[[], None]:
        with self._lock:
            self._readings_callbacks.append(callback)

        def remove() -> None:
            with self._lock:
                if callback in self._readings_callbacks:
                    self._readings_callbacks.remove(callback)

        return remove

    def subscribe(
        self, filter: EventFilter | None = None, *, after_id: int | None = None
    ) -> EventSubscription:
        """An async iterator of events (call from the event loop). ``after_id`` replays
        the stored events after it first."""
        return EventSubscription(self, filter or EventFilter(), after_id)

    def subscribe_readings(self, points: frozenset[UUID] | None = None) -> ReadingSubscription:
        return ReadingSubscription(self, points)

    # -- the listener thread ---------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._stop.clear()
            self._last_id = self.last_id()
            self._thread = threading.Thread(target=self._run, name="event-listener", daemon=True)
            self._thread.start()
        if not self._listening.wait(timeout):
            log.warning("event listener not connected after %.0f s", timeout)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    @property
    def dispatched_id(self) -> int:
        """The newest event id this process's listener has handed to its consumers."""
        return self._last_id

    @property
    def listening(self) -> bool:
        return self._listening.is_set()

    def _run(self) -> None:
        backoff = 0.2
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    conn.execute(f"LISTEN {notify.CHANNEL}")
                    self._listening.set()
                    backoff = 0.2
                    self._catch_up()  # whatever was published while (re)connecting
                    while not self._stop.is_set():
                        # Each notification is handled as it arrives; an event id already
                        # fetched by an earlier catch-up (they come in bursts) costs nothing.
                        for note in conn.notifies(timeout=0.5):
                            if self._stop.is_set():
                                break
                            if note.channel != CHANNEL:
                                self._dispatch_readings(notify.decode(note.payload))
                            elif not note.payload.isdigit() or int(note.payload) > self._last_id:
                                self._catch_up()
            except Exception:
                self._listening.clear()
                if self._stop.is_set():
                    break
                log.exception("event listener lost its connection; reconnecting")
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
        self._listening.clear()

    def _catch_up(self) -> None:
        events = self.fetch(after_id=self._last_id, limit=100_000)
        if not events:
            return
        self._last_id = events[-1].id or self._last_id
        with self._lock:
            callbacks = list(self._event_callbacks)
        for event in events:
            for callback in callbacks:
                try:
                    callback(event)
                except Exception:
                    log.exception("event consumer failed on %s", event.type)

    def _dispatch_readings(self, readings: list[Reading]) -> None:
        if not readings:
            return
        with self._lock:
            callbacks = list(self._readings_callbacks)
        for callback in callbacks:
            try:
                callback(readings)
            except Exception:
                log.exception("readings consumer failed")


class EventSubscription:
    """Events for one consumer on the event loop; resumes from the log when it lags."""

    def __init__(self, bus: EventBus, filter: EventFilter, after_id: int | None) -> None:
        self._bus = bus
        self.filter = filter
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_SIZE)
        self._backlog: deque[Event] = deque()
        self._lagged = False
        # Without ``after_id``: what the process has already dispatched is the baseline a
        # lagging consumer catches up from (not the start of the log).
        self.last_id: int = after_id if after_id is not None else bus.dispatched_id
        self._replay = after_id is not None
        self._remove = bus.on_event(self._from_thread)

    def _from_thread(self, event: Event) -> None:
        if self.filter.matches(event):
            self._loop.call_soon_threadsafe(self._put, event)

    def _put(self, event: Event) -> None:
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self._lagged = True

    def close(self) -> None:
        self._remove()

    def __aiter__(self) -> EventSubscription:
        return self

    async def __anext__(self) -> Event:
        while True:
            if self._backlog:
                event = self._backlog.popleft()
            elif self._replay or self._lagged:
                self._replay = self._lagged = False
                while not self._queue.empty():
                    self._queue.get_nowait()
                self._backlog = deque(
                    await asyncio.to_thread(
                        self._bus.fetch, after_id=self.last_id, filter=self.filter, limit=100_000
                    )
                )
                continue
            else:
                event = await self._queue.get()
            if event.id is not None and event.id <= self.last_id:
                continue  # seen already (replayed from the log)
            self.last_id = event.id or self.last_id
            return event


class ReadingSubscription:
    """Live readings (optionally of some points only) for one consumer on the event loop."""

    def __init__(self, bus: EventBus, points: frozenset[UUID] | None) -> None:
        self.points = points
        self.dropped = 0
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[list[Reading]] = asyncio.Queue(1000)
        self._remove = bus.on_readings(self._from_thread)

    def _from_thread(self, readings: Sequence[Reading]) -> None:
        chosen = (
            list(readings)
            if self.points is None
            else [r for r in readings if r.point in self.points]
        )
        if chosen:
            self._loop.call_soon_threadsafe(self._put, chosen)

    def _put(self, readings: list[Reading]) -> None:
        try:
            self._queue.put_nowait(readings)
        except asyncio.QueueFull:
            self.dropped += len(readings)

    def close(self) -> None:
        self._remove()

    def __aiter__(self) -> ReadingSubscription:
        return self

    async def __anext__(self) -> list[Reading]:
        return await self._queue.get()
