"""Live twins: desired -> reported round trip and command fan-out, over a real Mosquitto.

Runs its own PostgreSQL and Mosquitto in a temp dir, a platform with the demo building
sized to ``--twins`` VAVs, one twin per VAV, the twin runtime with its MQTT channel, and
a simulated device process (``tests/twin_device.py``) answering for every twin over one
connection, signing and verifying every message.

* **round trip**: set a desired property on one twin and wait for the ``synced`` event
  (platform -> broker -> device -> broker -> platform, each hop signed and committed);
  median and p95 over ``--rounds``.
* **fan-out**: one bulk job (label selector) sends a command to every twin; times until
  the job returns (all queued), until every command is delivered to the broker, and until
  every device result is stored (``succeeded``).

``python -m bench.bench_twins [--twins 1000] [--rounds 200]``
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from app.errors import UnavailableError
from app.events.model import Event
from app.platform import open_platform
from app.settings import Settings
from app.telemetry.broker import LocalMosquitto, find_mosquitto
from app.telemetry.pg_server import LocalPostgres
from app.twins.factory import start_runtime
from app.twins.jobs import Selector
from ingest.demo_building import generate_building

REPO = Path(__file__).resolve().parents[1]
GRAPH = "urn:twingraph:model:bench-twins"


class Counter:
    """Counts twin events of some types as the platform emits them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.synced: dict[str, threading.Event] = {}

    def __call__(self, event: Event) -> None:
        with self.lock:
            self.counts[event.type] = self.counts.get(event.type, 0) + 1
        if event.type == "synced" and event.data.get("twinSynced"):
            waiter = self.synced.get(str(event.data.get("twinId")))
            if waiter is not None:
                waiter.set()

    def count(self, type_: str) -> int:
        with self.lock:
            return self.counts.get(type_, 0)


def _wait(check: object, timeout: float) -> float:
    t0 = time.perf_counter()
    while not check():  # type: ignore[operator]
        if time.perf_counter() - t0 > timeout:
            raise TimeoutError("benchmark step timed out")
        time.sleep(0.002)
    return time.perf_counter() - t0


def run(twins: int = 1000, rounds: int = 200) -> dict[str, float]:
    try:
        find_mosquitto()
    except UnavailableError as exc:
        print(f"twins: skipped ({exc.detail})")
        return {}
    tmp = Path(tempfile.mkdtemp(prefix="twingraph-bench-twins-"))
    tmp.chmod(0o755)  # as root, the local PostgreSQL runs as `postgres` and must reach it
    pg = LocalPostgres(tmp / "postgres")
    broker = LocalMosquitto(tmp / "mosquitto")
    device: subprocess.Popen[bytes] | None = None
    platform = None
    runtime = None
    try:
        settings = Settings(
            data_dir=tmp / "data",
            database_url=pg.start(),
            mqtt_url=broker.start(),
            twins_heartbeat_timeout_s=600,
        )
        platform = open_platform(settings)
        service = platform.twins
        assert service is not None and platform.events is not None
        floors = max(1, twins // 100)
        platform.models.ingest_triples(
            graph=GRAPH,
            triples=generate_building(floors=floors, vavs_per_floor=-(-twins // floors)),
        )
        found = platform.store.query(
            "SELECT ?v WHERE { ?v a <https://brickschema.org/schema/Brick#VAV> }"
        )
        vavs = sorted(row["v"].value for row in found)[:twins]  # type: ignore[union-attr]
        t = time.perf_counter()
        secrets = {}
        for iri in vavs:
            state, secret = service.create(entity=iri, labels={"bench": "1"})
            secrets[state.id] = secret
        created = time.perf_counter() - t
        counter = Counter()
        service.listeners.append(counter)
        runtime = start_runtime(service, platform.events, settings)
        assert runtime is not None and runtime.channel is not None
        assert runtime.channel.wait_connected(10)
        (tmp / "secrets.json").write_text(json.dumps(secrets))
        device = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.twin_device",
                "--url",
                settings.mqtt_url or "",
                "--secrets",
                str(tmp / "secrets.json"),
                "--log",
                str(tmp / "device.jsonl"),
                "--heartbeat",
                "300",
            ],
            cwd=REPO,
            stdout=subprocess.PIPE,
        )
        assert device.stdout is not None and device.stdout.readline().strip() == b"ready"
        _wait(lambda: counter.count("device.online") >= len(secrets), 120)
        time.sleep(2)  # let the boot resync (the desired state to every device) drain

        twin = sorted(secrets)[0]
        samples = []
        for i in range(rounds + 5):
            waiter = counter.synced[twin] = threading.Event()
            t = time.perf_counter()
            service.set_desired(twin, {"vav.v1.AirflowSetpoint": 100 + i})
            if not waiter.wait(10):
                raise TimeoutError("no synced event")
            if i >= 5:  # warm-up
                samples.append(time.perf_counter() - t)
        samples.sort()
        median = statistics.median(samples) * 1000
        p95 = samples[int(len(samples) * 0.95) - 1] * 1000

        delivered0 = counter.count("command.delivered")
        succeeded0 = counter.count("command.succeeded")
        t = time.perf_counter()
        job = service.jobs.send_command(Selector(labels="bench=1"), name="flush", ttl_s=600)
        queued = time.perf_counter() - t
        assert job.succeeded == len(secrets), job.as_dict(results=False)
        n = len(secrets)
        _wait(lambda: counter.count("command.delivered") - delivered0 >= n, 300)
        delivered = time.perf_counter() - t
        _wait(lambda: counter.count("command.succeeded") - succeeded0 >= n, 300)
        succeeded = time.perf_counter() - t
        print(
            f"twins: {n} twins created in {created:.1f} s ({n / created:.0f}/s); "
            f"desired->reported round trip over MQTT: median {median:.1f} ms, "
            f"p95 {p95:.1f} ms ({rounds} rounds)"
        )
        print(
            f"twins: command fan-out to {n} twins: queued (job returned) {queued:.2f} s, "
            f"all delivered {delivered:.2f} s, all succeeded (device results stored) "
            f"{succeeded:.2f} s"
        )
        return {
            "round_trip_median_ms": median,
            "round_trip_p95_ms": p95,
            "fanout_queued_s": queued,
            "fanout_delivered_s": delivered,
            "fanout_succeeded_s": succeeded,
        }
    finally:
        if runtime is not None:
            runtime.stop()
        if device is not None:
            device.terminate()
            device.communicate(timeout=30)
        if platform is not None:
            platform.close()
        broker.stop()
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--twins", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    run(args.twins, args.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
