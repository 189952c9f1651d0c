"""Readings -> point twins, off the event listener thread.

The bus hands committed readings to ``offer`` on its listener thread, which must not wait
for the database: ``offer`` only keeps the newest reading of each point, and a worker
thread hands what has gathered to ``apply`` (``TwinService.on_readings``) in one pass.
Keeping one reading per point bounds memory by the number of points, not by the rate:
an older reading would be ignored anyway (the sync applies only newer values, and the
``latest`` table holds the truth). Past ``max_points`` distinct points waiting, readings
of further points are dropped, counted and logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from uuid import UUID

from app.domain.telemetry import Reading

log = logging.getLogger("twingraph.twins")

_WARN_EVERY_S = 60.0


class ReadingSync:
    def __init__(
        self,
        apply: Callable[[list[Reading]], None],
        *,
        max_points: int = 100_000,
    ) -> None:
        self._apply = apply
        self._max = max_points
        self._pending: dict[UUID, Reading] = {}
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._warned = -_WARN_EVERY_S
        #: Readings dropped for want of room, readings handed to ``apply``, and passes.
        self.dropped = 0
        self.applied = 0
        self.passes = 0

    @property
    def waiting(self) -> int:
        return len(self._pending)

    def offer(self, readings: Sequence[Reading]) -> None:
        """Keep the newest reading per point (any thread; never blocks on I/O)."""
        dropped = 0
        with self._cond:
            if self._stopping:
                return
            for r in readings:
                held = self._pending.get(r.point)
                if held is None and len(self._pending) >= self._max:
                    dropped += 1
                elif held is None or held.time <= r.time:
                    self._pending[r.point] = r
            self.dropped += dropped
            self._cond.notify()
        if dropped and time.monotonic() - self._warned >= _WARN_EVERY_S:
            self._warned = time.monotonic()
            log.warning(
                "reading -> twin sync is behind: %d readings of points beyond the %d waiting "
                "were dropped (%d in all); their twins catch up with the next reading",
                dropped,
                self._max,
                self.dropped,
            )

    def start(self, prime: Callable[[], Sequence[Reading]] | None = None) -> None:
        """Start the worker; ``prime`` (on the worker, first) supplies readings to apply
        before any offered ones, e.g. the latest of each point after a takeover."""
        if self._thread is not None:
            raise RuntimeError("already started")
        self._thread = threading.Thread(
            target=self._run, args=(prime,), name="twin-reading-sync", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker; what is waiting is dropped (the next leader catches up)."""
        with self._cond:
            self._stopping = True
            self._pending = {}
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self, prime: Callable[[], Sequence[Reading]] | None) -> None:
        if prime is not None:
            try:
                self.offer(prime())
            except Exception:
                log.exception("could not read the latest readings of point twins")
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                batch, self._pending = self._pending, {}
            try:
                self._apply(list(batch.values()))
                self.applied += len(batch)
            except Exception:  # keep the worker alive; the next reading retries
                log.exception("reading -> twin sync failed")
            self.passes += 1
