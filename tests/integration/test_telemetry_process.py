"""Telemetry through real `twingraph` processes: kill -9 durability, and CSV import by label."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from app.telemetry.readings import TelemetryStore
from tests.conftest import PgServer, free_port, run_cli, shared_data
from tests.factories import vav_model

cli = run_cli


def test_acknowledged_readings_survive_kill_9(
    tmp_path: Path, pg_server: PgServer, telemetry_store: TelemetryStore
) -> None:
    ts = str(uuid.uuid4())
    env = {
        **os.environ,
        "TWINGRAPH_DATA_DIR": str(tmp_path),
        "TWINGRAPH_DATABASE_URL": pg_server.dsn,
    }
    model = tmp_path / "m.ttl"
    model.write_text(vav_model("k9", ts=ts))
    assert cli("ingest", "turtle", str(model), "--graph", "urn:ex:k9", env=env).returncode == 0
    token = cli("token", "create", "--scope", "write", env=env).stdout.strip()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        t0 = datetime(2031, 3, 1, tzinfo=UTC)
        acknowledged = 0
        for b in range(5):
            readings = [
                {
                    "point": ts,
                    "time": (t0 + timedelta(seconds=b * 1000 + i)).isoformat(),
                    "value": float(i),
                }
                for i in range(1000)
            ]
            r = httpx.post(
                f"{url}/telemetry",
                json={"readings": readings},
                headers={"Authorization": f"Bearer {token}"},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            acknowledged += r.json()["accepted"]
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    stored = telemetry_store.range(point=uuid.UUID(ts), start=t0, end=t0 + timedelta(days=1))
    assert len(stored) == acknowledged == 5000


def test_open_fdd_trend_imports_by_label(
    tmp_path: Path, pg_server: PgServer, telemetry_store: TelemetryStore
) -> None:
    model = shared_data("brick", "buildings", "open-fdd_ahu7_brick_model.ttl")
    trend = shared_data("timeseries", "open-fdd_ahu7", "data_ahu7.csv")
    env = {
        **os.environ,
        "TWINGRAPH_DATA_DIR": str(tmp_path),
        "TWINGRAPH_DATABASE_URL": pg_server.dsn,
    }
    r = cli(
        "ingest",
        "turtle",
        str(model),
        "--graph",
        "urn:ex:ofdd",
        "--no-validate",
        "--migrate",
        env=env,
    )
    assert r.returncode == 0, r.stderr
    r = cli("telemetry", "import", str(trend), env=env)
    assert (
        r.returncode == 1 and "no known point" in r.stderr
    )  # unmatched columns named, nothing stored
    r = cli("telemetry", "import", str(trend), "--skip-unknown", env=env)
    assert r.returncode == 0, r.stderr
    # Count what the CSV holds for the columns the model labels, independently of the importer.
    import csv

    with trend.open(encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    labels = {
        "OAT (°F)",
        "RAT (°F)",
        "MAT (°F)",
        "SAT (°F)",
        "Eff SAT Sp (°F)",
        "SA Static Press (inH₂O)",
        "Clg Vlv Cmd (%)",
        "Prht Vlv Cmd (%)",
        "OA Damper Cmd (%)",
    }
    cols = [i for i, h in enumerate(header) if h in labels]
    expected = sum(1 for row in body for i in cols if i < len(row) and row[i].strip())
    assert f"{len(body)} rows, {len(cols)} points, {expected} readings" in " ".join(
        r.stdout.split()
    )
    again = cli("telemetry", "import", str(trend), "--skip-unknown", env=env)
    assert f"(0 new, {expected} already stored)" in " ".join(again.stdout.split())
