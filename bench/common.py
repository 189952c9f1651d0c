"""Pieces every benchmark shares: a served app, and the raw-COPY baseline."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

import uvicorn
from psycopg_pool import ConnectionPool

from app.main import create_app
from app.platform import Platform
from app.telemetry.readings import COPY_TYPES


def serve(platform: Platform) -> tuple[str, uvicorn.Server]:
    """The app on a free 127.0.0.1 port in a background thread; set should_exit to stop."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(platform=platform), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server


def raw_copy_seconds(pool: ConnectionPool, encoded: Sequence[tuple[Any, ...]], batch: int) -> float:
    """Seconds for psycopg binary COPY of pre-encoded rows into a table shaped like
    ``readings`` (created and dropped here): the baseline telemetry ingest is held to."""
    with pool.connection() as conn:
        conn.execute("DROP TABLE IF EXISTS raw_readings")
        conn.execute("CREATE TABLE raw_readings (LIKE readings INCLUDING ALL)")
    t = time.perf_counter()
    for i in range(0, len(encoded), batch):
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
    seconds = time.perf_counter() - t
    with pool.connection() as conn:
        conn.execute("DROP TABLE raw_readings")
    return seconds
