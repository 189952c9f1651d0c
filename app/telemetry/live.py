"""Live telemetry for a running server: MQTT ingest, and the demo feed `make run` shows.

The ingest stores what arrives on the broker (``TWINGRAPH_MQTT_URL``) through the same
TelemetryStore as HTTP, rejecting readings for points the graph does not know. The demo
feed runs a local Mosquitto under the data dir and a simulator publishing plausible values
for every point of the demo building, so a newcomer sees readings move. That broker
refuses anonymous clients: the platform logs in as its service user, devices and gateways
with their own credentials (``app.twins.broker_auth``); the URL in the settings then holds
the service user's password, so only ``public_url`` of it may be shown.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.domain.iris import RDF_TYPE
from app.domain.telemetry import Reading
from app.platform import Platform
from app.telemetry.broker import LocalMosquitto, credentialed_url, public_url, write_auth_files
from app.telemetry.mqtt_ingest import MqttIngest
from app.telemetry.simulator import PointSpec, Simulator

if TYPE_CHECKING:
    from app.twins.broker_auth import BrokerAuth
    from app.twins.runtime import TwinRuntime

log = logging.getLogger("twingraph.live")


def start_mqtt_ingest(
    platform: Platform, *, leader: TwinRuntime | None = None
) -> MqttIngest | None:
    """Subscribe to the configured broker; the platform's close() stops the ingest.

    The ingest's client id names one persistent session, which one connection at a time
    may hold (a second one takes it over at the broker). So with ``leader`` the ingest runs
    only while this process is the twin leader, like the device channel: at once if it
    leads now, else from the start of its term, until the term ends. The next leader
    resumes the session and gets what the broker queued meanwhile and what was left
    unacknowledged (stored at least once; the store ignores a reading stored already).
    """
    url, telemetry = platform.settings.mqtt_url, platform.telemetry
    if url is None or telemetry is None:
        return None

    def store(readings: list[Reading]) -> None:
        telemetry.write(readings=readings)

    ingest = MqttIngest(
        url,
        client_id=platform.settings.mqtt_client_id,
        store=store,
        known_point=platform.points.known,
    )
    if leader is None:
        ingest.start()
        platform.add_closer(ingest.stop)
        log.info("MQTT ingest subscribed to %s", public_url(url))
        return ingest
    forget = leader.lead(
        "mqtt_ingest",
        ingest.start,
        ingest.stop,
        state=lambda: "connected" if ingest.connected else "connecting",
    )
    platform.add_closer(forget)
    log.info(
        "MQTT ingest of %s runs in the twin leader (%s)",
        public_url(url),
        "this process" if leader.leader else "another process for now",
    )
    return ingest


def start_event_bridge(platform: Platform) -> None:
    """Publish this process's events to the configured broker (``twingraph/events/...``)."""
    from app.events.mqtt_sink import MqttEventSink

    url, bus = platform.settings.mqtt_url, platform.events
    if url is None or bus is None:
        return
    sink = MqttEventSink(url)
    sink.attach(bus)
    platform.add_closer(lambda: sink.detach(bus))


def start_local_broker(platform: Platform) -> str:
    """A Mosquitto under the data dir with authentication and ACLs on (stopped with the
    platform if this call started it); returns the URL the platform's clients use, with
    the service user's credentials in it."""
    from app.twins.broker_auth import SERVICE_USER, service_password

    broker = LocalMosquitto(platform.settings.broker_dir, auth=True)
    password = service_password(broker.root / "service-password")
    auth = _broker_auth(platform, (SERVICE_USER, password), broker.write_auth)
    auth.sync()  # before the start: the platform must be able to log in at once
    url = broker.start()
    if broker.launched:
        platform.add_closer(broker.stop)
    _keep_current(platform, auth)
    return credentialed_url(url, SERVICE_USER, password)


def start_broker_auth_files(platform: Platform) -> None:
    """With ``TWINGRAPH_BROKER_AUTH_DIR``: keep ``passwd`` and ``acl`` there current for an
    external Mosquitto (docker-compose.yml: it copies them and reloads on a change). The
    platform's user is the one of ``TWINGRAPH_MQTT_URL``."""
    directory = platform.settings.broker_auth_dir
    if directory is None:
        return
    from app.telemetry.mqtt_ingest import parse_url

    url = platform.settings.mqtt_url
    address = parse_url(url) if url else None
    service = None
    if address is not None and address.username is not None:
        service = (address.username, address.password or "")
    else:
        log.warning(
            "TWINGRAPH_MQTT_URL names no user: the broker files written to %s do not let "
            "the platform in",
            directory,
        )

    def write(passwords: str, acl: str) -> None:
        write_auth_files(directory, passwords, acl, owner=None)

    auth = _broker_auth(platform, service, write)
    auth.sync()
    _keep_current(platform, auth)


def _broker_auth(
    platform: Platform, service: tuple[str, str] | None, write: Callable[[str, str], object]
) -> BrokerAuth:
    from app.twins.broker_auth import BrokerAuth, BrokerUsers

    users = BrokerUsers(platform.db) if platform.db is not None else None
    return BrokerAuth(users=users, service=service, write=write)


def _keep_current(platform: Platform, auth: BrokerAuth) -> None:
    """Re-sync on twin events of any process (and this process's at once), and by polling."""
    auth.start()
    undo: list[Callable[[], None]] = [auth.stop]
    if platform.events is not None:
        undo.append(platform.events.on_event(auth.on_event))
    if platform.twins is not None:
        listeners = platform.twins.listeners
        listeners.append(auth.on_event)
        undo.append(lambda: listeners.remove(auth.on_event))

    def close() -> None:
        for step in reversed(undo):
            step()

    platform.add_closer(close)


@dataclass
class DemoFeed:
    simulator: Simulator
    points: int
    _stop: threading.Event

    def stop(self) -> None:
        self._stop.set()
        self.simulator.close(timeout=2)


def start_demo_feed(
    platform: Platform, url: str, *, graph: str, interval_s: float = 2.0
) -> DemoFeed:
    """Publish simulated readings for every point of ``graph`` that the directory knows."""
    classes: dict[str, str] = {}
    res = platform.store.query(
        f"SELECT ?p ?c WHERE {{ GRAPH <{graph}> {{ ?p <{RDF_TYPE}> ?c }} }}", union_default=False
    )
    for row in res:  # type: ignore[union-attr]
        classes[row["p"].value] = row["c"].value.rsplit("#", 1)[-1]
    specs = [
        PointSpec(ref.uuid, classes.get(ref.point, "Point"))
        for ref in platform.points.all()
        if ref.point in classes
    ]
    sim = Simulator(url, specs, site="demo", interval_s=interval_s, batch=True, seed=7)
    stop = threading.Event()

    def loop(tick: Callable[[], None] = sim.tick) -> None:
        sim.wait_connected(10)
        while not stop.wait(interval_s):
            try:
                tick()
            except Exception:  # a hiccup must not end the demo
                log.exception("demo feed tick failed")

    threading.Thread(target=loop, name="demo-feed", daemon=True).start()
    feed = DemoFeed(sim, len(specs), stop)
    platform.add_closer(feed.stop)
    return feed
