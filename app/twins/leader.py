"""Which server process is the twin leader: a PostgreSQL session-level advisory lock.

Several API processes may share one database (and one broker). Work that must happen once
— the MQTT device channel and the MQTT telemetry ingest with their fixed client ids, the
sweeper, the reading -> twin sync, event-triggered delivery — runs only in the process
holding the lock ``pg_try_advisory_lock(key)`` on a dedicated autocommit connection (not
from the pool, so the lock lives exactly as long as that session). Followers retry every
``interval_s``; the leader runs ``SELECT 1`` on its lock connection as often and steps
down at once when that fails. The server releases a session's advisory locks when the
session ends, so a crashed or partitioned leader hands over without anyone's help.

Fencing is by time, not by token: a leader whose connection is cut off gives up when its
check fails (``tcp_user_timeout`` bounds a check blocked on a dead network to ~10 s),
before the server notices the silent client through its keepalives (set on the lock
session to ~25 s) and frees the lock. The work led is idempotent (at-least-once delivery,
idempotent sweeps and syncs, readings stored once whatever is redelivered), and a second
MQTT connection with the channel's or the ingest's client id takes the session over at
the broker, where what the first left unacknowledged waits, so a short overlap is
harmless.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import psycopg

from app.telemetry.db import redact

log = logging.getLogger("twingraph.twins.leader")

#: The advisory lock key of the twin leader ("tgtw"); advisory locks are per database.
LEADER_LOCK_KEY = 0x7467_7477
APPLICATION_NAME = "twingraph twin leader"

# libpq (client side): a check blocked on a dead network fails after tcp_user_timeout.
_CONNECT_OPTIONS: dict[str, Any] = {
    "autocommit": True,
    "connect_timeout": 5,
    "application_name": APPLICATION_NAME,
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 3,
    "tcp_user_timeout": 10_000,
}
# Server side: a silent client's session (and so the lock) ends after ~25 s.
_SESSION_SETTINGS = (
    "SET tcp_keepalives_idle = 10",
    "SET tcp_keepalives_interval = 5",
    "SET tcp_keepalives_count = 3",
)


class LeaderElection:
    """Contend for ``key`` until ``stop()``; ``on_elected`` / ``on_demoted`` run on the
    election thread (or in ``start``/``stop``), one at a time, alternating."""

    def __init__(
        self,
        dsn: str,
        *,
        on_elected: Callable[[], None],
        on_demoted: Callable[[], None],
        key: int = LEADER_LOCK_KEY,
        interval_s: float = 1.0,
    ) -> None:
        self._dsn = dsn
        self._key = key
        self._interval = interval_s
        self._on_elected = on_elected
        self._on_demoted = on_demoted
        self._conn: psycopg.Connection[Any] | None = None
        self._leader = False
        self._transition = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        #: Terms won and lost, for health and tests.
        self.elections = 0
        self.demotions = 0

    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def backend_pid(self) -> int | None:
        """The server process of the lock session (None while not connected)."""
        conn = self._conn
        return conn.info.backend_pid if conn is not None and not conn.closed else None

    def start(self) -> bool:
        """Try once at once (a lone process leads before ``start`` returns), then keep
        contending on a thread. An ``on_elected`` failure on this first try propagates.
        Returns whether this process leads."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._stop.clear()
        try:
            self._attempt()
        except psycopg.Error as exc:
            log.warning("twin leader election: %s; retrying", exc)
        self._thread = threading.Thread(target=self._run, name="twin-leader", daemon=True)
        self._thread.start()
        return self._leader

    def stop(self) -> None:
        """Stop contending; a leader steps down (``on_demoted``) and releases the lock."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._interval + 15)
            self._thread = None
        self._demote(release=True)
        self._close()

    # -- the election thread -------------------------------------------------------------

    def _run(self) -> None:
        failing = False  # log a lost database once, not every retry
        while not self._stop.wait(self._interval):
            try:
                if self._leader:
                    self._check()
                else:
                    self._attempt()
                failing = False
            except psycopg.Error as exc:
                if not failing:
                    log.warning("twin leader election: %s; retrying", exc)
                failing = True
            except Exception:
                log.exception("twin leader election failed; retrying")

    def _attempt(self) -> None:
        """Take the lock if it is free (connecting first when needed)."""
        try:
            if self._conn is None or self._conn.closed:
                self._conn = psycopg.connect(self._dsn, **_CONNECT_OPTIONS)
                for statement in _SESSION_SETTINGS:
                    self._conn.execute(statement)
            row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", (self._key,)).fetchone()
        except psycopg.Error:
            self._close()
            raise
        if not (row and row[0]):
            return
        with self._transition:
            if self._stop.is_set():  # stopping meanwhile: do not start a term
                self._release()
                return
            self._leader = True
            self.elections += 1
            log.info("this process is the twin leader (lock session %s)", self.backend_pid)
            try:
                self._on_elected()
            except BaseException:
                log.exception("could not start leading; releasing the twin leader lock")
                self._leader = False
                with contextlib.suppress(Exception):
                    self._on_demoted()  # undo whatever was started
                self._release()
                raise

    def _check(self) -> None:
        """Prove the lock session is alive; step down at once when it is not."""
        conn = self._conn
        try:
            if conn is None or conn.closed:
                raise psycopg.OperationalError("lock connection closed")
            conn.execute("SELECT 1")
        except psycopg.Error as exc:
            log.warning(
                "twin leader lost its lock connection to %s (%s); stepping down",
                redact(self._dsn),
                exc,
            )
            self._demote(release=False)
            self._close()

    def _demote(self, *, release: bool) -> None:
        with self._transition:
            if not self._leader:
                return
            self._leader = False
            self.demotions += 1
            try:
                self._on_demoted()
            except Exception:
                log.exception("stepping down as twin leader failed")
            finally:
                if release:
                    self._release()
            log.info("this process is no longer the twin leader")

    def _release(self) -> None:
        """Unlock (the next contender takes over within its retry interval)."""
        conn = self._conn
        if conn is None or conn.closed:
            return
        try:
            conn.execute("SELECT pg_advisory_unlock(%s)", (self._key,))
        except psycopg.Error as exc:  # the session is gone: so is the lock
            log.warning("could not release the twin leader lock: %s", exc)
            self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
