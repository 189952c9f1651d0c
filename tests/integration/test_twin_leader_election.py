"""The twin leader lock against a real PostgreSQL (one holder at a time, takeover when the
holder's session dies, release on stop) and the reading sync's coalescing worker."""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from app.domain.telemetry import Reading
from app.twins.leader import LeaderElection
from app.twins.reading_sync import ReadingSync
from tests.conftest import PgServer


def eventually(check: Callable[[], Any], timeout: float = 5.0) -> Any:
    deadline = time.monotonic() + timeout
    while not (result := check()):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)
    return result


def holder(dsn: str, key: int) -> int | None:
    """The backend pid holding advisory lock ``key`` in this database, per pg_locks."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND ((classid::bigint << 32) | objid::bigint) = %s",
            (key,),
        ).fetchone()
    return int(row[0]) if row else None


class Contender:
    def __init__(self, dsn: str, key: int, on_elected: Callable[[], None] | None = None) -> None:
        self.log: list[str] = []
        self.election = LeaderElection(
            dsn,
            key=key,
            interval_s=0.1,
            on_elected=on_elected or (lambda: self.log.append("elected")),
            on_demoted=lambda: self.log.append("demoted"),
        )


@pytest.fixture
def dsn(pg_server: PgServer) -> str:
    return pg_server.database("twin_leader_lock")


@pytest.fixture
def key() -> int:
    return random.randrange(1 << 40, 1 << 50)  # a lock no other test contends for


def test_one_leader_at_a_time_and_takeover_when_its_session_dies(dsn: str, key: int) -> None:
    a, b = Contender(dsn, key), Contender(dsn, key)
    try:
        assert a.election.start() is True  # a free lock: elected before start returns
        assert a.log == ["elected"]
        assert b.election.start() is False
        time.sleep(0.4)  # b retried a few times meanwhile
        assert not b.election.is_leader and b.log == []
        assert holder(dsn, key) == a.election.backend_pid is not None

        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (a.election.backend_pid,))
        t0 = time.monotonic()
        eventually(lambda: b.election.is_leader)
        takeover = time.monotonic() - t0
        eventually(lambda: a.log == ["elected", "demoted"])  # a noticed, and stepped down
        print(f"\ntakeover after the leader's session died: {takeover * 1000:.0f} ms")
        assert holder(dsn, key) == b.election.backend_pid
        time.sleep(0.3)  # a reconnects as a follower and stays one
        assert not a.election.is_leader and a.log == ["elected", "demoted"]

        b.election.stop()  # a clean stop releases the lock at once
        assert b.log == ["elected", "demoted"] and not b.election.is_leader
        eventually(lambda: a.election.is_leader)
        assert a.log == ["elected", "demoted", "elected"]
    finally:
        a.election.stop()
        b.election.stop()
    assert holder(dsn, key) is None
    assert a.log[-1] == "demoted" and a.election.elections == 2 == a.election.demotions


def test_a_failing_start_of_the_term_releases_the_lock(dsn: str, key: int) -> None:
    def refuse() -> None:
        raise RuntimeError("cannot lead")

    failing = Contender(dsn, key, on_elected=refuse)
    with pytest.raises(RuntimeError, match="cannot lead"):
        failing.election.start()
    try:
        assert not failing.election.is_leader and failing.log == ["demoted"]  # undone
        assert holder(dsn, key) is None
        other = Contender(dsn, key)
        assert other.election.start() is True
        other.election.stop()
    finally:
        failing.election.stop()


def test_reading_sync_keeps_the_newest_reading_per_point_while_the_worker_is_busy() -> None:
    release = threading.Event()
    batches: list[list[Reading]] = []
    threads: set[str] = set()

    def apply(readings: list[Reading]) -> None:
        threads.add(threading.current_thread().name)
        batches.append(sorted(readings, key=lambda r: str(r.point)))
        release.wait(5)

    sync = ReadingSync(apply, max_points=2)
    p1, p2, p3 = sorted((uuid.uuid4() for _ in range(3)), key=str)
    t = datetime(2031, 1, 1, tzinfo=UTC)
    sync.start()
    try:
        sync.offer([Reading(p1, t, 1.0)])
        eventually(lambda: len(batches) == 1)  # the worker is now busy with the first
        sync.offer([Reading(p1, t + timedelta(seconds=2), 3.0), Reading(p2, t, 10.0)])
        sync.offer([Reading(p1, t + timedelta(seconds=1), 2.0)])  # older: ignored
        sync.offer([Reading(p3, t, 99.0)])  # a third point: no room, dropped and counted
        sync.offer([Reading(p2, t + timedelta(seconds=5), 11.0)])
        assert sync.waiting == 2 and sync.dropped == 1
        release.set()
        eventually(lambda: len(batches) == 2)
        assert [(r.point, r.value) for r in batches[1]] == [(p1, 3.0), (p2, 11.0)]
        eventually(lambda: sync.applied == 3)
        assert threads == {"twin-reading-sync"}  # never on the offering thread
    finally:
        release.set()
        sync.stop()
    sync.offer([Reading(p1, t + timedelta(days=1), 0.0)])  # after stop: ignored
    assert sync.waiting == 0 and len(batches) == 2
