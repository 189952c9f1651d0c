"""`ingest bacnet` against real BACnet/IP devices: ``tests/bacnet_device.py`` processes.

On loopback each process needs its own UDP port (bacpypes3 short-circuits any 127.x
address on its own port as "self"), so there the scanner sends Who-Is to the device's
address. Broadcast discovery runs in a network namespace the test builds (a veth pair in
198.18.0.0/15, the range set aside for network tests) and removes again.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app import cli as app_cli
from app.domain.telemetry import Reading
from app.platform import Platform
from app.telemetry.readings import TelemetryStore
from ingest.bacnet.client import Network, discover
from ingest.bacnet.job import ingest_prepared, prepare
from ingest.bacnet.mapping import series_id
from ingest.bacnet.poll import follow_cov, poll
from ingest.bacnet.scan import load_scan, save_scan
from tests.conftest import PgServer, run_cli

DEVICE_PROGRAM = Path(__file__).resolve().parents[1] / "bacnet_device.py"
NAMES = {
    "ZN-T",
    "SA-TEMP",
    "DA-SP",
    "FAN-CMD",
    "RA-HUM",
    "DUCT-SP",
    "CLG-VLV",
    "SF-STS",
    "MYSTERY-7",
    "XYZ-123",
}


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Device:
    proc: subprocess.Popen[str]
    instance: int
    host: str
    port: int
    output: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"{self.host}:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def spawn_device(
    host: str, prefix: int, port: int, instance: int, *, netns: str | None = None
) -> tuple[Device, threading.Event]:
    """Start the device program; the event is set once it says its sockets are bound."""
    cmd = [
        sys.executable,
        str(DEVICE_PROGRAM),
        "--address",
        f"{host}/{prefix}:{port}",
        "--instance",
        str(instance),
    ]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=DEVICE_PROGRAM.parents[1],
    )
    device = Device(proc, instance, host, port)
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            device.output.append(line)
            if line.startswith("ready"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    return device, ready


def wait_ready(*started: tuple[Device, threading.Event]) -> list[Device]:
    devices = [d for d, _ in started]
    for device, ready in started:
        if not ready.wait(20):
            for d in devices:
                d.stop()
            raise RuntimeError("BACnet test device did not start: " + "".join(device.output))
    return devices


def start_device(host: str, prefix: int, port: int, instance: int) -> Device:
    return wait_ready(spawn_device(host, prefix, port, instance))[0]


@pytest.fixture(scope="module")
def device() -> Iterator[Device]:
    dev = start_device("127.0.0.1", 8, free_udp_port(), 599)
    yield dev
    dev.stop()


def scanner() -> Network:
    return Network(f"127.0.0.1/8:{free_udp_port()}", apdu_timeout_ms=1000)


def test_discovery_reads_the_device_and_its_objects(device: Device) -> None:
    t0 = time.perf_counter()
    scan = asyncio.run(discover(scanner(), target=device.target, wait_s=15))
    elapsed = time.perf_counter() - t0
    assert [d.instance for d in scan.devices] == [599]
    dev = scan.devices[0]
    assert (dev.name, dev.address, dev.vendor_name) == (
        "AHU-1-CTRL",
        device.target,
        "TwinGraph tests",
    )
    by_name = {o.name: o for o in dev.objects}
    assert set(by_name) == NAMES
    zone = by_name["ZN-T"]
    assert (zone.identifier, zone.units, zone.description) == (
        "analog-input,1",
        "degrees-fahrenheit",
        "Zone air temperature",
    )
    assert isinstance(zone.present_value, float) and 70 <= zone.present_value <= 73
    assert by_name["SA-TEMP"].present_value == 55.2  # a REAL, shown as written
    assert by_name["FAN-CMD"].present_value == "active"
    assert by_name["RA-HUM"].units == "percent-relative-humidity"
    assert by_name["DA-SP"].description is None  # the device has none
    # A directed Who-Is returns when the device answers, not when the 15 s window ends.
    assert elapsed < 10, f"discovery waited out its window ({elapsed:.2f}s)"


def test_nobody_answering_is_an_empty_scan_and_a_bad_address_a_clear_error() -> None:
    scan = asyncio.run(discover(scanner(), target=f"127.0.0.1:{free_udp_port()}", wait_s=0.3))
    assert scan.devices == ()
    from app.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="not a BACnet/IP address"):
        asyncio.run(discover(Network("not-an-address"), wait_s=0.1))
    from ingest.bacnet.client import BacnetUnavailableError

    with pytest.raises(BacnetUnavailableError, match="cannot open BACnet/IP on 203.0.113.254"):
        asyncio.run(discover(Network("203.0.113.254/24:47808"), wait_s=0.1))


def test_cov_subscriptions_feed_readings(device: Device, telemetry_store: TelemetryStore) -> None:
    scan = asyncio.run(discover(scanner(), target=device.target, wait_s=2))
    points = prepare(scan).mapping.points
    stored: list[Reading] = []

    def sink(readings: list[Reading]) -> tuple[int, int]:
        stored.extend(readings)
        result = telemetry_store.write(readings=readings)
        return result.inserted, result.duplicates

    result = asyncio.run(follow_cov(scanner(), points, sink, duration_s=1.5, flush_s=0.3))
    assert result.failures == []
    # every subscription is answered with the current value, then the drifting zone
    # temperature notifies its changes
    assert {r.point for r in stored} == {p.timeseries for p in points}
    zone = [r for r in stored if r.point == series_id(599, "analog-input,1")]
    assert len(zone) >= 2 and len({r.value for r in zone}) >= 2
    assert result.readings == len(stored) and result.inserted == len(stored)


def _classes(platform: Platform, graph: str) -> dict[str, tuple[str, str, str]]:
    """object-name -> (Brick class, object identifier, time-series id), via the BACnet refs."""
    rows = platform.store.query(
        f"""PREFIX brick: <https://brickschema.org/schema/Brick#>
        PREFIX ref: <https://brickschema.org/schema/Brick/ref#>
        PREFIX bacnet: <http://data.ashrae.org/bacnet/>
        SELECT ?name ?class ?oid ?ts WHERE {{ GRAPH <{graph}> {{
          ?p a ?class ; ref:hasExternalReference ?b, ?t ; brick:isHostedBy ?device .
          ?b a ref:BACnetReference ; bacnet:object-name ?name ; bacnet:object-identifier ?oid ;
             bacnet:contains ?device .
          ?t ref:hasTimeseriesId ?ts .
          ?device a bacnet:device, brick:BACnet_Controller .
        }} }}"""
    )
    return {
        r["name"].value: (r["class"].value.split("#")[1], r["oid"].value, r["ts"].value)
        for r in rows  # type: ignore[union-attr]
    }


def test_scan_to_conforming_model_to_telemetry_and_offline_replay(
    device: Device, platform: Platform, graph_iri: str, tmp_path: Path
) -> None:
    scan = asyncio.run(discover(scanner(), target=device.target, wait_s=2))
    t0 = time.perf_counter()
    summary = ingest_prepared(platform, prepare(scan), graph=graph_iri)
    ingest_s = time.perf_counter() - t0
    assert summary.ingest is not None and summary.ingest.report is not None
    assert summary.ingest.report.conforms
    m = summary.mapping
    assert (len(m.points), len(m.classified), len(m.unclassified), len(m.low_confidence)) == (
        10,
        9,
        1,
        1,
    )
    found = _classes(platform, graph_iri)
    assert found["ZN-T"] == (
        "Zone_Air_Temperature_Sensor",
        "analog-input,1",
        str(series_id(599, "analog-input,1")),
    )
    assert found["SA-TEMP"][0] == "Supply_Air_Temperature_Sensor"
    assert found["DA-SP"][0] == "Supply_Air_Temperature_Setpoint"
    assert found["FAN-CMD"][0] == "Fan_Command"
    assert found["DUCT-SP"][0] == "Air_Static_Pressure_Sensor"
    assert found["MYSTERY-7"][0] == "Point"

    # the point directory knows the time series, so readings resolve to these points
    ref = platform.points.get(series_id(599, "analog-input,1"))
    assert ref is not None and ref.point.endswith("device-599/analog-input-1")

    # polling feeds every present value into telemetry
    assert platform.telemetry is not None
    telemetry = platform.telemetry
    before = datetime.now(UTC)

    def sink(readings: list[Reading]) -> tuple[int, int]:
        result = telemetry.write(readings=readings)
        return result.inserted, result.duplicates

    result = asyncio.run(poll(scanner(), m.points, sink, interval_s=0.1, rounds=2))
    assert (result.rounds, result.readings, result.failures) == (2, 20, [])
    latest = telemetry.latest(points=[p.timeseries for p in m.points])
    fan = latest[series_id(599, "binary-value,4")]
    assert fan.value is True and fan.time >= before
    zone = latest[series_id(599, "analog-input,1")]
    assert isinstance(zone.value, float) and 70 <= zone.value <= 73

    # the saved scan replays without a network: the same model, so nothing new is stored
    saved = tmp_path / "scan.json"
    save_scan(scan, saved)
    again = ingest_prepared(platform, prepare(load_scan(saved)), graph=graph_iri)
    assert again.ingest is not None
    assert any(n.startswith("unchanged") for n in again.ingest.notes)
    assert platform.revisions is not None
    assert [r.author for r in platform.revisions.find(graph=graph_iri)] == ["ingest bacnet"]

    # ... and with a review: one class corrected, one point left out
    review = tmp_path / "review.csv"
    prepare(load_scan(saved), review_to=review)
    with review.open() as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        row["brick_class"] = {"XYZ-123": "Mixed_Air_Temperature_Sensor", "MYSTERY-7": "skip"}.get(
            row["object_name"], row["brick_class"]
        )
    with review.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    reviewed = ingest_prepared(
        platform, prepare(load_scan(saved), apply_review_from=review), graph=graph_iri
    )
    assert reviewed.mapping.coverage == 1.0 and len(reviewed.mapping.points) == 9
    revisions = platform.revisions.find(graph=graph_iri)
    assert len(revisions) == 2 and revisions[1].added > 0 and revisions[1].removed > 0
    found = _classes(platform, graph_iri)
    assert found["XYZ-123"][0] == "Mixed_Air_Temperature_Sensor"
    assert "MYSTERY-7" not in found and found["ZN-T"][0] == "Zone_Air_Temperature_Sensor"
    print(
        f"BACnet: ingest of 10 points {ingest_s:.2f}s ({platform.settings.graph_url or 'embedded'})"
    )


def test_cli_scans_saves_reviews_ingests_and_polls(
    device: Device,
    tmp_path: Path,
    pg_server: PgServer,
    telemetry_store: TelemetryStore,
    oxigraph_server: str,
) -> None:
    # The session's oxigraph server and PostgreSQL: the command does not spend its time
    # loading the ontologies into a fresh store.
    env = {
        **os.environ,
        "TWINGRAPH_DATA_DIR": str(tmp_path / "data"),
        "TWINGRAPH_DATABASE_URL": pg_server.dsn,
        "TWINGRAPH_GRAPH_URL": oxigraph_server,
    }

    def twingraph(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli("ingest", "bacnet", *args, env=env)

    scan_file, review = tmp_path / "scan.json", tmp_path / "review.csv"
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    r = twingraph(
        "--address",
        f"127.0.0.1/8:{free_udp_port()}",
        "--target",
        device.target,
        "--wait",
        "2",
        "--graph",
        "urn:twingraph:model:bacnet-cli",
        "--save-scan",
        str(scan_file),
        "--review",
        str(review),
        "--poll",
        "0.2",
        "--rounds",
        "2",
        "--json",
    )
    cli_s = time.perf_counter() - t0
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["devices"] == 1 and summary["objects"] == 10
    assert summary["mapping"]["classified"] == 9
    assert summary["mapping"]["unclassified"] == 1
    assert summary["mapping"]["low_confidence"] == 1
    assert summary["ingest"]["validation"]["conforms"] is True
    assert summary["poll"]["readings"] == 20 and summary["poll"]["failures"] == []
    assert "1 device(s) answered" in r.stderr and "unclassified device 599" in r.stderr
    readings = telemetry_store.range(
        point=series_id(599, "analog-input,1"),
        start=started,
        end=datetime.now(UTC) + timedelta(seconds=1),
    )
    assert len(readings) >= 2 and all(isinstance(x.value, float) for x in readings)
    assert load_scan(scan_file).devices[0].instance == 599
    with review.open() as fh:
        rows = list(csv.DictReader(fh))
    assert [r["object_name"] for r in rows][:2] == ["MYSTERY-7", "XYZ-123"]

    # a wrong review file stops the job before anything is opened or stored (in-process:
    # the command fails before the platform would open)
    bad = tmp_path / "bad.csv"
    bad.write_text(
        'device_instance,object_identifier,brick_class\n599,"analog-input,1",Zone_Temp\n'
    )
    failed = CliRunner().invoke(
        app_cli.cli,
        ["ingest", "bacnet", "--from-scan", str(scan_file), "--apply-review", str(bad)],
        env={**env, "COLUMNS": "250"},
    )
    assert failed.exit_code == 2, failed.output
    assert "invalid_review" in failed.output and "line 2: 'Zone_Temp'" in failed.output
    print(f"BACnet CLI: scan + ingest + 2 polling rounds {cli_s:.1f}s")


# -- broadcast discovery in a network namespace ----------------------------------------------


@dataclass
class Lan:
    netns: str
    host_link: str
    subnet: str  # "198.18.X"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=10)


@pytest.fixture
def lan() -> Iterator[Lan]:
    """A network namespace joined to this one by a veth pair: a small LAN of our own."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("broadcast discovery needs root and iproute2 to build a network namespace")
    tag = f"{os.getpid() % 100000:05d}"
    used = subprocess.run(["ip", "-4", "addr"], capture_output=True, text=True).stdout
    octet = next(o for o in random.sample(range(256), 256) if f"198.18.{o}." not in used)
    lan = Lan(f"tgbac{tag}", f"tgbh{tag}", f"198.18.{octet}")
    try:
        _ip("netns", "add", lan.netns)
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"cannot create a network namespace here: {exc.stderr.strip()}")
    try:
        _ip("link", "add", lan.host_link, "type", "veth", "peer", "name", f"tgbn{tag}")
        _ip("link", "set", f"tgbn{tag}", "netns", lan.netns)
        _ip("addr", "add", f"{lan.subnet}.1/24", "dev", lan.host_link)
        _ip("link", "set", lan.host_link, "up")
        for host in (2, 3):
            _ip("-n", lan.netns, "addr", "add", f"{lan.subnet}.{host}/24", "dev", f"tgbn{tag}")
        _ip("-n", lan.netns, "link", "set", f"tgbn{tag}", "up")
        _ip("-n", lan.netns, "link", "set", "lo", "up")
        yield lan
    finally:
        subprocess.run(["ip", "link", "del", lan.host_link], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", lan.netns], capture_output=True, timeout=10)


def test_broadcast_who_is_finds_every_device_on_the_lan(lan: Lan) -> None:
    devices = wait_ready(
        *(
            spawn_device(f"{lan.subnet}.{host}", 24, 47808, instance, netns=lan.netns)
            for host, instance in ((2, 601), (3, 602))
        )
    )
    try:
        net = Network(f"{lan.subnet}.1/24:47808", apdu_timeout_ms=1000)
        scan = asyncio.run(discover(net, wait_s=0.5))
        assert [(d.instance, d.address) for d in scan.devices] == [
            (601, f"{lan.subnet}.2"),
            (602, f"{lan.subnet}.3"),
        ]
        assert all({o.name for o in d.objects} == NAMES for d in scan.devices)
        only = asyncio.run(discover(net, low=602, high=602, wait_s=0.3))
        assert [d.instance for d in only.devices] == [602]
    finally:
        for dev in devices:
            dev.stop()
