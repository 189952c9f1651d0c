"""Live telemetry for a running server: MQTT ingest, and the demo feed `make run` shows.

The ingest stores what arrives on the broker (``TWINGRAPH_MQTT_URL``) through the same
TelemetryStore as HTTP, rejecting readings for points the graph does not know. The demo
feed runs a local Mosquitto under the data dir and a simulator publishing plausible values
for every point of the demo building, so a newcomer sees readings move.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

from app.domain.iris import RDF_TYPE
from app.domain.telemetry import Reading
from app.platform import Platform
from app.telemetry.broker import LocalMosquitto
from app.telemetry.mqtt_ingest import MqttIngest
from app.telemetry.simulator import PointSpec, Simulator

log = logging.getLogger("twingraph.live")


def start_mqtt_ingest(platform: Platform) -> MqttIngest | None:
    """Subscribe to the configured broker; the platform's close() stops the ingest."""
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
    ingest.start()
    platform.add_closer(ingest.stop)
    log.info("MQTT ingest subscribed to %s", url)
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
    """A Mosquitto under the data dir (stopped with the platform if this call started it)."""
    broker = LocalMosquitto(platform.settings.broker_dir)
    already = broker.running
    url = broker.start()
    if not already:
        platform.add_closer(broker.stop)
    return url


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
