"""Pieces every benchmark shares: a served app, and the raw-COPY baseline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import uvicorn
from psycopg_pool import ConnectionPool
from starlette.types import ASGIApp

from app.main import create_app
from app.platform import Platform
from app.telemetry.readings import COPY_TYPES


class BackgroundServer(uvicorn.Server):
    """uvicorn serving ``app`` on a free 127.0.0.1 port, in a thread of this process.

    ``stop()`` ends it and waits for its thread, so that what the app uses (a platform,
    its pools and sweepers) can be closed afterwards without requests still in flight.
    """

    def __init__(self, app: ASGIApp) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        super().__init__(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        self.url = f"http://127.0.0.1:{port}"
        self._thread = threading.Thread(target=self.run, name=f"uvicorn-{port}", daemon=True)

    def start(self) -> BackgroundServer:
        self._thread.start()
        while not self.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"uvicorn for {self.url} stopped before it started")
            time.sleep(0.02)
        return self

    def stop(self, timeout_s: float = 30.0) -> None:
        self.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise RuntimeError(f"uvicorn for {self.url} did not stop within {timeout_s:g} s")


def serve(platform: Platform) -> tuple[str, BackgroundServer]:
    """The app on a free 127.0.0.1 port in a background thread; ``stop()`` it (waits for
    the thread) before closing the platform."""
    server = BackgroundServer(create_app(platform=platform)).start()
    return server.url, server


def raw_copy_seconds(
    pool: ConnectionPool,
    encoded: Sequence[tuple[Any, ...]],
    batch: int,
    connections: int = 1,
) -> float:
    """Seconds for psycopg binary COPY of pre-encoded rows into a table shaped like
    ``readings`` (created and dropped here): the baseline telemetry ingest is held to.
    With ``connections`` > 1 the batches are spread over that many concurrent
    connections (threads of this process), as concurrent HTTP clients are."""
    with pool.connection() as conn:
        conn.execute("DROP TABLE IF EXISTS raw_readings")
        conn.execute("CREATE TABLE raw_readings (LIKE readings INCLUDING ALL)")
    starts = list(range(0, len(encoded), batch))

    def copy_batches(mine: Sequence[int]) -> None:
        for i in mine:
            with (
                pool.connection() as conn,
                conn.cursor() as cur,
                cur.copy(
                    "COPY raw_readings (point, time, num, txt, kind) FROM STDIN (FORMAT BINARY)"
                ) as copy,
            ):
                copy.set_types(COPY_TYPES)
                for row in encoded[i : i + batch]:
                    copy.write_row(row)

    t = time.perf_counter()
    with ThreadPoolExecutor(connections) as workers:
        list(workers.map(copy_batches, [starts[k::connections] for k in range(connections)]))
    seconds = time.perf_counter() - t
    with pool.connection() as conn:
        conn.execute("DROP TABLE raw_readings")
    return seconds
