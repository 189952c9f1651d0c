"""Loopback ports for the servers the platform runs itself (PostgreSQL, Mosquitto)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path

log = logging.getLogger("twingraph.ports")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket() as s:
        # As the servers do: TIME_WAIT leftovers of our own last run do not block the port.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def choose_port(port_file: Path, requested: int | None) -> int:
    """The requested port; else the one remembered in ``port_file`` if still free; else any
    free port. The choice is remembered, so a server keeps its port across restarts."""
    if requested is not None:
        port = requested
    elif port_file.is_file():
        port = int(port_file.read_text().strip())
        if not port_is_free(port):
            log.warning("port %d remembered in %s is taken; choosing another", port, port_file)
            port = free_port()
    else:
        port = free_port()
    port_file.write_text(f"{port}\n")
    return port
