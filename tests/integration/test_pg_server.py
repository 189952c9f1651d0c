"""LocalPostgres: first start, reuse, restart on the remembered port, kill -9 durability."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from app.domain.telemetry import Reading
from app.errors import UnavailableError
from app.telemetry.db import connect_pool, detect_features
from app.telemetry.pg_server import LocalPostgres
from app.telemetry.readings import TelemetryStore, open_store
from tests.conftest import PgServer


@pytest.fixture
def fresh_root() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="twingraph-pg-own-"))
    try:
        yield root
    finally:
        LocalPostgres(root).stop()
        shutil.rmtree(root, ignore_errors=True)


def test_missing_binaries_say_how_to_install(tmp_path: Path) -> None:
    server = LocalPostgres(tmp_path / "pg", bin_dirs=[tmp_path / "no-such-bin"])
    with pytest.raises(UnavailableError) as info:
        server.start()
    assert "apt-get install postgresql" in info.value.detail
    assert info.value.code == "postgres_not_installed"
    assert not (tmp_path / "pg").exists()


def test_running_server_is_reused(pg_server: PgServer) -> None:
    again = LocalPostgres(pg_server.root)
    assert again.running
    assert again.start() == pg_server.dsn
    with psycopg.connect(pg_server.dsn) as conn:
        row = conn.execute(
            "SELECT current_database(), current_setting('listen_addresses')"
        ).fetchone()
    assert row == ("twingraph", "127.0.0.1")


def test_password_is_required(pg_server: PgServer) -> None:
    wrong = pg_server.dsn.replace("password=", "password=x")
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(wrong).close()


def _children(pid: int) -> list[int]:
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry))
    return out


def test_acknowledged_writes_survive_kill_9_and_restart(fresh_root: Path) -> None:
    server = LocalPostgres(fresh_root)
    dsn = server.start()
    port_file = (fresh_root / "port").read_text()
    pool = connect_pool(dsn, timeout_s=2)
    p = uuid.uuid4()
    t = datetime(2026, 3, 1, tzinfo=UTC)
    try:
        store = open_store(pool)
        result = store.write(readings=[Reading(p, t, 1.0), Reading(p, t.replace(minute=1), "on")])
        assert result.inserted == 2
        postmaster = int((server.pgdata / "postmaster.pid").read_text().split()[0])
        for pid in [postmaster, *_children(postmaster)]:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while server.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not server.running
    finally:
        pool.close()
    assert LocalPostgres(fresh_root).start() == dsn  # crash recovery, same port
    assert (fresh_root / "port").read_text() == port_file
    pool = connect_pool(dsn)
    try:
        store = TelemetryStore(pool, detect_features(pool))
        assert store.latest(points=[p]) == {p: Reading(p, t.replace(minute=1), "on")}
        assert store.count() == 2
    finally:
        pool.close()
