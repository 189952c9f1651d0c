"""The twin background services: delivery, the sweeper, the reading sync, the MQTT channel.

Several server processes may share one database and broker; these services run in one of
them at a time, the twin leader (``app.twins.leader``: a PostgreSQL advisory lock). A lone
process leads as soon as it starts. Followers serve everything that is plain database work
(the HTTP device channel, the twin API); on a takeover the new leader connects the channel,
re-sends to every online twin and catches point twins up with the latest readings. Other
once-per-deployment work joins the same terms through ``lead`` (the MQTT telemetry ingest:
its fixed client id and persistent session may be held by one process at a time).

Delivery reacts to events, whichever process published them: ``desired.set`` and
``command.queued`` send what is new to the twin's device when it is online over MQTT;
``device.online`` (a connect or a boot) sends the whole desired state and every command
not yet acknowledged, in id order; and every (re)connect of the channel does the same for
all online twins, so nothing marked delivered is lost with a crashed process. One full
pass serves each boot, however often (and however concurrently with a connect) it is
heard, so a device does not get its waiting commands twice. One worker thread does all
sending, so a twin's messages leave in order. Devices over HTTP fetch instead
(``/devices/{id}/inbox``).

The sweeper expires commands past their time-to-live and marks silent devices offline.
Committed readings become point twins' reported values (``app.twins.reading_sync``).
Model changes re-read the twins' classes and sites from the graph.
"""

from __future__ import annotations

import logging
import queue
import sys
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from app.domain.telemetry import Reading
from app.events.bus import EventBus
from app.events.model import Event
from app.twins.channel import DeviceChannel
from app.twins.leader import LeaderElection
from app.twins.model import CommandState
from app.twins.reading_sync import ReadingSync
from app.twins.service import TwinService

log = logging.getLogger("twingraph.twins")

_REFRESH = "\0refresh"
_ALL = "\0all"
_STOP = "\0stop"
#: A delivery task is (twin id or one of the above, need): None sends what is new; an event
#: id sends everything unless a full pass already covered that event; _ALWAYS, everything.
_ALWAYS = sys.maxsize


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    mqtt_url: str | None = None
    client_id: str = "twingraph-twins"
    sweep_interval_s: float = 1.0
    clock_skew_s: float = 300.0
    #: The database of the leader lock (None: the twin service's pool's).
    dsn: str | None = None
    #: How often a follower tries to lead, and the leader checks its lock session.
    leader_retry_s: float = 1.0
    #: Distinct points whose newest reading may wait for the twin sync.
    max_pending_points: int = 100_000
    #: How often the leader refreshes the telemetry rollups (plain PostgreSQL); 0: never.
    rollup_interval_s: float = 60.0


@dataclass(eq=False)
class _Service:
    """A service run only while this process leads (``TwinRuntime.lead``)."""

    name: str
    start: Callable[[], None]
    stop: Callable[[], None]
    state: Callable[[], str]
    running: bool = False


def _stronger(a: int | None, b: int | None) -> int | None:
    """The stronger of two delivery needs (None, what is new, is the weakest)."""
    if a is None:
        return b
    return a if b is None else max(a, b)


class _Sightings:
    """The events a term has acted on. An event this process emits reaches it twice, from
    the emitting thread right after the commit and through the bus, in either order (the
    bus's listener thread can beat a committing thread that the scheduler set aside): it is
    acted on at the first sighting only, not queued for delivery twice. Bounded: the oldest
    ids (other processes' events, seen once) are forgotten first."""

    def __init__(self, limit: int = 100_000) -> None:
        self._ids: OrderedDict[int, bool] = OrderedDict()  # event id -> seen locally
        self._limit = limit
        self._lock = threading.Lock()

    def first(self, event_id: int, *, local: bool) -> bool:
        with self._lock:
            seen_locally = self._ids.get(event_id)
            if seen_locally is None:
                self._ids[event_id] = local
                if len(self._ids) > self._limit:
                    self._ids.popitem(last=False)
                return True
            if seen_locally != local:  # both sightings in: nothing more to come
                del self._ids[event_id]
            return False


class _Term:
    """What one term of leadership runs; each election starts a new one."""

    def __init__(self, channel: DeviceChannel | None, sync: ReadingSync) -> None:
        self.channel = channel
        self.sync = sync
        self.tasks: queue.SimpleQueue[tuple[str, int | None]] = queue.SimpleQueue()
        #: Per twin, the newest event id visible when its last full pass read its state.
        self.covered: dict[str, int] = {}
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.seen = _Sightings()


class TwinRuntime:
    def __init__(self, twins: TwinService, bus: EventBus, options: RuntimeOptions) -> None:
        self.twins = twins
        self.bus = bus
        self.options = options
        self.election = LeaderElection(
            options.dsn or str(twins.pool.conninfo),
            on_elected=self._elected,
            on_demoted=self._demoted,
            interval_s=options.leader_retry_s,
        )
        self._term: _Term | None = None
        self._undo: list[Callable[[], None]] = []
        # What else the leader runs; the lock orders ``lead`` against terms starting/ending.
        self._services: list[_Service] = []
        self._services_lock = threading.Lock()
        self._leading = False

    @property
    def leader(self) -> bool:
        return self._term is not None

    @property
    def channel(self) -> DeviceChannel | None:
        """The MQTT device channel, while this process leads (and has a broker)."""
        term = self._term
        return term.channel if term is not None else None

    def status(self) -> dict[str, object]:
        """For ``/health``: does this process lead, is its device channel up, and the state
        of each service it leads (None while following)."""
        term = self._term
        channel = term.channel if term is not None else None
        status: dict[str, object] = {
            "leader": term is not None,
            "device_channel": None
            if channel is None
            else ("connected" if channel.connected else "connecting"),
            "readings_dropped": term.sync.dropped if term is not None else 0,
        }
        with self._services_lock:  # not held while asking: a term may be stopping them
            services = list(self._services)
        return status | {s.name: s.state() if s.running else None for s in services}

    def lead(
        self,
        name: str,
        start: Callable[[], None],
        stop: Callable[[], None],
        *,
        state: Callable[[], str] | None = None,
    ) -> Callable[[], None]:
        """Run a service in every term of this process's leadership: ``start`` when a term
        begins (at once if this process leads now; it must not block, e.g. connect in the
        background), ``stop`` when it ends, before the twin services stop. ``state`` (for
        ``/health``, under ``name``) describes it while it runs. Returns a function that
        stops the service if it runs and forgets it. A ``start`` that raises fails the
        term (or this call)."""
        service = _Service(name, start, stop, state or (lambda: "running"))
        with self._services_lock:
            if any(s.name == name for s in self._services):
                raise ValueError(f"a service named {name!r} is led already")
            self._services.append(service)
            if self._leading:
                try:
                    self._start_service(service)
                except BaseException:
                    self._services.remove(service)
                    raise

        def forget() -> None:
            with self._services_lock:
                if service in self._services:
                    self._services.remove(service)
                    self._stop_service(service)

        return forget

    def start(self) -> None:
        self.bus.start()
        self.twins.listeners.append(self._on_local_event)
        self._undo = [
            self.bus.on_event(self._on_bus_event),
            self.bus.on_readings(self._on_readings),
            lambda: self.twins.listeners.remove(self._on_local_event),
        ]
        self.twins.runtime = self
        try:
            self.election.start()  # a free lock: leading before this returns
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        for undo in self._undo:
            undo()
        self._undo = []
        self.election.stop()  # steps down first (``_demoted``), then releases the lock
        if getattr(self.twins, "runtime", None) is self:
            self.twins.runtime = None

    @staticmethod
    def _start_service(service: _Service) -> None:
        service.start()
        service.running = True
        log.info("leading: %s started", service.name)

    @staticmethod
    def _stop_service(service: _Service) -> None:
        if not service.running:
            return
        service.running = False
        try:
            service.stop()
        except Exception:
            log.exception("could not stop %s", service.name)

    # -- leadership (on the election thread) -------------------------------------------------

    def _elected(self) -> None:
        channel = None
        if self.options.mqtt_url:
            channel = DeviceChannel(
                self.options.mqtt_url,
                twins=self.twins,
                client_id=self.options.client_id,
                clock_skew_s=self.options.clock_skew_s,
            )
        sync = ReadingSync(self.twins.on_readings, max_points=self.options.max_pending_points)
        term = _Term(channel, sync)
        loops = [(self._deliver_loop, "twin-delivery"), (self._sweep_loop, "twin-sweeper")]
        telemetry = self.twins.telemetry
        if telemetry is not None and telemetry.rollups and self.options.rollup_interval_s > 0:
            loops.append((self._rollup_loop, "telemetry-rollups"))
        for target, name in loops:
            thread = threading.Thread(target=target, args=(term,), name=name, daemon=True)
            thread.start()
            term.threads.append(thread)
        term.sync.start(prime=self._latest_of_point_twins)
        # Model changes while nobody led are caught up with; the channel's connect sends
        # every online twin what it has not acknowledged (``_ALL``).
        term.tasks.put((_REFRESH, None))
        self._term = term
        if channel is not None:
            channel.on_connected = lambda: term.tasks.put((_ALL, _ALWAYS))
            channel.start()
        with self._services_lock:
            self._leading = True
            for service in self._services:  # one failing: the election undoes the term
                self._start_service(service)

    def _demoted(self) -> None:
        with self._services_lock:
            self._leading = False
            for service in reversed(self._services):
                self._stop_service(service)
        term, self._term = self._term, None
        if term is None:
            return
        term.stop.set()
        term.tasks.put((_STOP, None))
        term.sync.stop()
        for thread in term.threads:
            thread.join(10)
        if term.channel is not None:
            term.channel.stop()

    def _latest_of_point_twins(self) -> Sequence[Reading]:
        telemetry = self.twins.telemetry
        points = list(self.twins.store.point_twins()) if telemetry is not None else []
        if telemetry is None or not points:
            return []
        return list(telemetry.latest(points=points).values())

    # -- reacting to events (listener thread: hand off, never block) -----------------------

    def _on_readings(self, readings: list[Reading]) -> None:
        term = self._term
        if term is not None:
            term.sync.offer(readings)

    def _on_local_event(self, event: Event) -> None:
        """Events this process emitted: handled at once, unless their bus echo came first."""
        term = self._term
        if term is not None and event.id is not None and not term.seen.first(event.id, local=True):
            return
        self._on_event(term, event)

    def _on_bus_event(self, event: Event) -> None:
        term = self._term
        if term is not None and event.id is not None and not term.seen.first(event.id, local=False):
            return
        self._on_event(term, event)

    def _on_event(self, term: _Term | None, event: Event) -> None:
        """Every process forgets its caches; only the leader acts."""
        twin_id = event.data.get("twinId") if event.twin else None
        if event.type in ("twin.registered", "twin.deleted", "twin.updated"):
            self.twins.forget_caches()
            if term is not None and term.channel is not None and isinstance(twin_id, str):
                term.channel.forget(twin_id)
            return
        if term is None:
            return
        if event.type.startswith("model.") and event.ok:
            term.tasks.put((_REFRESH, None))
        elif not isinstance(twin_id, str):
            return
        elif event.type in ("desired.set", "command.queued") and event.ok:
            term.tasks.put((twin_id, None))
        elif event.type == "device.online":  # a boot: everything, once per boot
            term.tasks.put((twin_id, _ALWAYS if event.id is None else event.id))

    # -- delivery ----------------------------------------------------------------------------

    def _deliver_loop(self, term: _Term) -> None:
        while True:
            first = term.tasks.get()
            batch = [first]
            while True:  # coalesce what is waiting: one pass per twin
                try:
                    batch.append(term.tasks.get_nowait())
                except queue.Empty:
                    break
            needs: dict[str, int | None] = {}
            for key, need in batch:
                needs[key] = _stronger(needs.get(key), need)
            if _STOP in needs or term.stop.is_set():
                return
            refresh = _REFRESH in needs
            needs.pop(_REFRESH, None)
            if needs.pop(_ALL, None) is not None:
                try:
                    online = self.twins.store.select_ids(online=True)
                except Exception:
                    log.exception("could not list online twins")
                    online = []
                for twin_id in online:
                    needs[twin_id] = _ALWAYS
            if needs:
                self._guard(lambda n=needs: self._deliver_needs(term, n))  # type: ignore[misc]
            if refresh:  # after sending: devices need not wait for a pass over the graph
                self._guard(self.twins.refresh_entities)

    def _deliver_needs(self, term: _Term, needs: dict[str, int | None]) -> None:
        """One pass: everything to each twin that needs it (after the channel's connect,
        ``_ALWAYS``; after a boot, its ``device.online`` event id, unless an earlier full
        pass of this term covered that boot), and what is new to the others.

        One full pass per boot: a boot heard twice (from the emitter and the bus), or heard
        while the pass a connect makes to all online twins runs, would otherwise re-send
        every command the device has not acknowledged yet. A full pass covers a boot when
        it read the twin's state after the event committed. Event ids become visible in id
        order (the bus's publish lock; its catch-up relies on that too), so a pass that
        first reads the newest visible id covers every event up to it."""
        full = {
            t for t, need in needs.items() if need is not None and need > term.covered.get(t, -1)
        }
        mark = self.bus.last_id() if full else 0
        _sent, fully = self._deliver(term.channel, {t: t in full for t in needs})
        for twin_id in fully:
            term.covered[twin_id] = mark

    def deliver(self, tasks: dict[str, bool]) -> int:
        """Send each twin's device what it has not had (everything, for twins mapped to
        True); only twins online over MQTT, and only while this process leads. Returns the
        number of messages sent."""
        return self._deliver(self.channel, tasks)[0]

    def _deliver(
        self, channel: DeviceChannel | None, tasks: dict[str, bool]
    ) -> tuple[int, set[str]]:
        """(messages sent, twins sent everything)."""
        if channel is None or not channel.connected:
            return 0, set()
        refs = self.twins.store.refs(list(tasks))
        ids = sorted(t for t, r in refs.items() if r.online and r.transport == "mqtt")
        if not ids:
            return 0, set()
        full = {t for t in ids if tasks[t]}
        sent = 0
        versions: dict[str, int] = {}
        for twin_id, (version, props) in self.twins.desired_for_delivery_many(
            ids, full=full
        ).items():
            if (props or twin_id in full) and channel.send_desired(
                twin_id, version, props, full=twin_id in full
            ):
                sent += 1
                if version:
                    versions[twin_id] = version
        self.twins.mark_desired_delivered_many(versions)
        delivered: list[int] = []
        for twin_id, commands in self.twins.commands.pending_many(ids, resend=full).items():
            for cmd in commands:
                if channel.send_command(twin_id, cmd):
                    sent += 1
                    if cmd.state is CommandState.QUEUED:
                        delivered.append(cmd.id)
        self.twins.commands.mark_delivered_many(delivered)
        return sent, full

    # -- sweeping ----------------------------------------------------------------------------

    def _sweep_loop(self, term: _Term) -> None:
        while not term.stop.wait(self.options.sweep_interval_s):
            self._guard(self.twins.commands.expire_due)
            self._guard(self.twins.sweep_offline)

    def _rollup_loop(self, term: _Term) -> None:
        """Telemetry rollups (``app.telemetry.rollups``): once at the start of a term, then
        every ``rollup_interval_s``."""
        telemetry = self.twins.telemetry
        rollups = telemetry.rollups if telemetry is not None else None
        if rollups is None:
            return
        self._guard(rollups.refresh)
        while not term.stop.wait(self.options.rollup_interval_s):
            self._guard(rollups.refresh)

    @staticmethod
    def _guard(work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:  # keep the background thread alive; the next pass retries
            log.exception("twin background work failed")
