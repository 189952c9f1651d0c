"""Events and time travel, with the raw engines measured in the same run.

(a) Event fan-out latency: ``EventBus.publish`` in one process to the ``on_event`` callback
    of the listener thread (the path SSE and subscriptions take), median and p95.
(b) Live-reading announcements: ``TelemetryStore.write`` with announcements on vs off
    (the cost the live feed adds to every write), same batches, interleaved.
(c) The model as of T: building a view (undo revisions, copy ontologies, infer) vs the raw
    pyoxigraph insert of the same quads into an empty in-memory store.

``python -m bench.bench_events``
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyoxigraph as ox

from app.domain.telemetry import Reading
from app.events.model import Event
from app.platform import open_platform
from app.settings import Settings
from ingest.demo_building import generate_building


def _fan_out(platform_events: object, n: int = 300) -> list[float]:
    from app.events.bus import EventBus

    bus: EventBus = platform_events  # type: ignore[assignment]
    bus.start()
    arrived: dict[int, float] = {}
    done = threading.Event()

    def on_event(event: Event) -> None:
        if event.type == "reported" and event.id is not None:
            arrived[event.id] = time.perf_counter()
            if len(arrived) >= n:
                done.set()

    undo = bus.on_event(on_event)
    sent: dict[int, float] = {}
    try:
        for i in range(n):
            t = time.perf_counter()
            stored = bus.publish(Event(type="reported", twin="urn:bench:twin", data={"i": i}))
            assert stored.id is not None
            sent[stored.id] = t
            time.sleep(0.002)
        done.wait(30)
    finally:
        undo()
    return sorted((arrived[k] - sent[k]) * 1000 for k in sent if k in arrived)


def run() -> None:
    root = Path(tempfile.mkdtemp(prefix="twingraph-bench-events-"))
    os.chmod(root, 0o755)  # the managed PostgreSQL runs as `postgres` when we are root
    platform = open_platform(Settings(data_dir=root))
    try:
        assert platform.events and platform.telemetry and platform.history
        print("\n== events and time travel ==")
        lat = _fan_out(platform.events)
        print(
            f"(a) publish -> listener in another thread via NOTIFY: median "
            f"{statistics.median(lat):.2f} ms, p95 {lat[int(len(lat) * 0.95) - 1]:.2f} ms "
            f"over {len(lat)} events"
        )

        store = platform.telemetry
        points = [uuid.uuid4() for _ in range(200)]
        t0 = datetime(2030, 1, 1, tzinfo=UTC)
        on: list[float] = []
        off: list[float] = []
        for round_ in range(6):
            for announce, samples in ((True, on), (False, off)):
                batch = [
                    Reading(
                        points[i % 200],
                        t0 + timedelta(days=round_, seconds=i, microseconds=announce),
                        float(i),
                    )
                    for i in range(20_000)
                ]
                store.announce = announce
                t = time.perf_counter()
                store.write(readings=batch)
                samples.append(time.perf_counter() - t)
        store.announce = True
        small_on: list[float] = []
        small_off: list[float] = []
        for round_ in range(20):
            for announce, samples in ((True, small_on), (False, small_off)):
                batch = [
                    Reading(
                        points[i % 200],
                        t0 + timedelta(days=100 + round_, seconds=i, microseconds=announce),
                        float(i),
                    )
                    for i in range(500)
                ]
                store.announce = announce
                t = time.perf_counter()
                store.write(readings=batch)
                samples.append(time.perf_counter() - t)
        store.announce = True
        print(
            f"(b) write 20k readings/batch: announce on {statistics.median(on) * 1000:.1f} ms, off "
            f"{statistics.median(off) * 1000:.1f} ms -> {statistics.median(off) / statistics.median(on):.2f}x; "
            f"500/batch (every reading announced): {statistics.median(small_on) * 1000:.1f} vs "
            f"{statistics.median(small_off) * 1000:.1f} ms -> "
            f"{statistics.median(small_off) / statistics.median(small_on):.2f}x"
        )

        graph = "urn:twingraph:model:bench-asof"
        moments = []
        for floors in (10, 9, 8):
            platform.models.ingest_triples(
                graph=graph, triples=generate_building(floors=floors, vavs_per_floor=20)
            )
            time.sleep(0.05)
            moments.append(datetime.now(UTC))
            time.sleep(0.05)
        platform.models.ingest_triples(
            graph=graph, triples=generate_building(floors=7, vavs_per_floor=20)
        )
        t = time.perf_counter()
        view, _rev = platform.history.store_at(moments[0])
        first = time.perf_counter() - t
        t = time.perf_counter()
        platform.history.store_at(moments[0])
        cached = time.perf_counter() - t
        time.sleep(8)  # let the spare ontology store finish in the background
        t = time.perf_counter()
        platform.history.store_at(moments[1])
        with_spare = time.perf_counter() - t
        quads = list(view.raw.quads_for_pattern(None, None, None))  # type: ignore[attr-defined]
        raw = ox.Store()
        t = time.perf_counter()
        raw.extend(quads)
        raw_s = time.perf_counter() - t
        print(
            f"(c) model as of T ({len(quads):,} quads incl. ontologies): first view {first:.2f} s "
            f"(raw pyoxigraph insert of the same quads {raw_s:.2f} s -> {raw_s / first:.2f}x); "
            f"another moment with the spare ontology store ready {with_spare:.2f} s "
            f"({raw_s / with_spare:.2f}x); the same moment again {cached * 1000:.1f} ms"
        )
    finally:
        platform.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    run()
