"""The twin background services of a server process: delivery, the sweeper, the MQTT channel.

Delivery reacts to events, whichever process published them: ``desired.set`` and
``command.queued`` send what is new to the twin's device when it is online over MQTT;
``device.online`` (a connect or a boot) sends the whole desired state and every command
not yet acknowledged, in id order; and every (re)connect of the channel does the same for
all online twins, so nothing marked delivered is lost with a crashed process. One worker
thread does all sending, so a twin's messages leave in order. Devices over HTTP fetch
instead (``/devices/{id}/inbox``).

The sweeper expires commands past their time-to-live and marks silent devices offline.
Model changes re-read the twins' classes and sites from the graph.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.events.bus import EventBus
from app.events.model import Event
from app.twins.channel import DeviceChannel
from app.twins.model import CommandState
from app.twins.service import TwinService

log = logging.getLogger("twingraph.twins")

_REFRESH = "\0refresh"
_ALL = "\0all"
_STOP = "\0stop"


@dataclass(frozen=True, slots=True)
class RuntimeOptions:
    mqtt_url: str | None = None
    client_id: str = "twingraph-twins"
    sweep_interval_s: float = 1.0
    clock_skew_s: float = 300.0


class TwinRuntime:
    def __init__(self, twins: TwinService, bus: EventBus, options: RuntimeOptions) -> None:
        self.twins = twins
        self.bus = bus
        self.options = options
        self.channel: DeviceChannel | None = None
        self._tasks: queue.SimpleQueue[tuple[str, bool]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._undo: list[Callable[[], None]] = []
        self._seen: set[int] = set()
        self._seen_lock = threading.Lock()

    def start(self) -> None:
        self.bus.start()
        if self.options.mqtt_url:
            self.channel = DeviceChannel(
                self.options.mqtt_url,
                twins=self.twins,
                client_id=self.options.client_id,
                clock_skew_s=self.options.clock_skew_s,
            )
            self.channel.on_connected = lambda: self._tasks.put((_ALL, True))
        self.twins.listeners.append(self._on_local_event)
        self._undo = [
            self.bus.on_event(self._on_bus_event),
            self.bus.on_readings(self.twins.on_readings),
            lambda: self.twins.listeners.remove(self._on_local_event),
        ]
        for target, name in (
            (self._deliver_loop, "twin-delivery"),
            (self._sweep_loop, "twin-sweeper"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        if self.channel is not None:
            self.channel.start()
        self.twins.runtime = self

    def stop(self) -> None:
        for undo in self._undo:
            undo()
        self._undo = []
        if self.channel is not None:
            self.channel.stop()
        self._stop.set()
        self._tasks.put((_STOP, False))
        for thread in self._threads:
            thread.join(10)
        self._threads = []
        if getattr(self.twins, "runtime", None) is self:
            self.twins.runtime = None

    # -- reacting to events (listener thread: hand off, never block) -----------------------

    def _on_local_event(self, event: Event) -> None:
        """Events this process emitted: handled at once; their bus echo is skipped."""
        if event.id is not None:
            with self._seen_lock:
                self._seen.add(event.id)
                if len(self._seen) > 100_000:
                    self._seen.clear()
        self._on_event(event)

    def _on_bus_event(self, event: Event) -> None:
        if event.id is not None:
            with self._seen_lock:
                if event.id in self._seen:
                    self._seen.discard(event.id)
                    return
        self._on_event(event)

    def _on_event(self, event: Event) -> None:
        if event.type.startswith("model.") and event.ok:
            self._tasks.put((_REFRESH, False))
            return
        twin_id = event.data.get("twinId") if event.twin else None
        if not isinstance(twin_id, str):
            return
        if event.type in ("desired.set", "command.queued") and event.ok:
            self._tasks.put((twin_id, False))
        elif event.type == "device.online":
            self._tasks.put((twin_id, True))
        elif event.type in ("twin.registered", "twin.deleted", "twin.updated"):
            self.twins.forget_caches()
            if self.channel is not None:
                self.channel.forget(twin_id)

    # -- delivery ----------------------------------------------------------------------------

    def _deliver_loop(self) -> None:
        while True:
            first = self._tasks.get()
            batch = [first]
            while True:  # coalesce what is waiting: one pass per twin
                try:
                    batch.append(self._tasks.get_nowait())
                except queue.Empty:
                    break
            pending: dict[str, bool] = {}
            for twin_id, full in batch:
                pending[twin_id] = pending.get(twin_id, False) or full
            if _STOP in pending:
                return
            if pending.pop(_REFRESH, None) is not None:
                self._guard(self.twins.refresh_entities)
            if pending.pop(_ALL, None) is not None:
                try:
                    online = self.twins.store.select_ids(online=True)
                except Exception:
                    log.exception("could not list online twins")
                    online = []
                for twin_id in online:
                    pending[twin_id] = True
            if pending:
                self._guard(lambda p=pending: self.deliver(p))  # type: ignore[misc]

    def deliver(self, tasks: dict[str, bool]) -> int:
        """Send each twin's device what it has not had (everything, for twins mapped to
        True); only twins online over MQTT. Returns the number of messages sent."""
        channel = self.channel
        if channel is None or not channel.connected:
            return 0
        refs = self.twins.store.refs(list(tasks))
        ids = sorted(t for t, r in refs.items() if r.online and r.transport == "mqtt")
        if not ids:
            return 0
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
        return sent

    # -- sweeping ----------------------------------------------------------------------------

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.options.sweep_interval_s):
            self._guard(self.twins.commands.expire_due)
            self._guard(self.twins.sweep_offline)

    @staticmethod
    def _guard(work: Callable[[], object]) -> None:
        try:
            work()
        except Exception:  # keep the background thread alive; the next pass retries
            log.exception("twin background work failed")
