"""Who may use the MQTT broker, and for what: Mosquitto's password and ACL files.

Users (Mosquitto user names cannot hold ``:``, so a twin id's ``:`` is written ``%3A``;
names starting with ``_`` are never twin ids, which start with a letter or digit):

* the platform: ``_twingraph`` on the broker it manages (password generated once,
  ``<broker dir>/service-password``), else the user of ``TWINGRAPH_MQTT_URL``; anything;
* each twin whose device secret was issued (created or rotated) since migration 9: user
  name the twin id, password the device secret. It may read its own ``desired``,
  ``commands`` and ``errors`` and write its own ``reported``, ``ack``, ``result`` and
  ``heartbeat`` (``pattern`` lines with ``%u``, so the file does not grow per device).
  The hash is computed when the secret is issued, the only moment it exists in plain
  text (``remember_secret``, called by the twin service); twins older than that have no
  login until their secret is rotated;
* gateways (``twingraph broker user add NAME --role gateway``): user ``_gw.NAME``; may
  publish readings for any point and read the rejections
  (``twingraph/+/points/+``, ``twingraph/+/telemetry``, ``twingraph/+/errors``).

Nobody else connects (the managed broker refuses anonymous clients), and nobody but the
platform reads the event stream (``twingraph/events/#``). ``BrokerAuth`` keeps the files
equal to the tables: at start, soon after a twin is registered, rotated or deleted (in
any process: bus events), and every ``interval_s`` (gateway changes from the CLI).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.events.model import Event
from app.telemetry import mqtt_topics
from app.telemetry.db import translate_errors
from app.telemetry.mosquitto_passwd import hash_password, password_file
from app.twins import topics

log = logging.getLogger("twingraph.broker")

SERVICE_USER = "_twingraph"
GATEWAY_PREFIX = "_gw."
ROLES = ("gateway",)
GATEWAY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
#: Topic kinds a device reads (``app.twins.topics.TO_DEVICE``) and writes (``FROM_DEVICE``).
DEVICE_READS, DEVICE_WRITES = topics.TO_DEVICE, topics.FROM_DEVICE
_GATEWAY_TOPICS = (
    ("write", f"{mqtt_topics.ROOT}/+/points/+"),
    ("write", f"{mqtt_topics.ROOT}/+/telemetry"),
    ("read", f"{mqtt_topics.ROOT}/+/errors"),
)
#: Events after which a twin's login may have changed.
_TWIN_EVENTS = frozenset({"twin.registered", "twin.deleted"})

Conn = psycopg.Connection[Any]


# -- names and the files -------------------------------------------------------------------


def device_username(twin_id: str) -> str:
    """The broker user name of a twin's device: its id, ``:`` written ``%3A``."""
    return twin_id.replace(":", "%3A")


def gateway_username(name: str) -> str:
    return GATEWAY_PREFIX + name


def check_gateway_name(name: str) -> str:
    if not GATEWAY_NAME.match(name):
        raise InvalidInputError(
            f"Gateway name {name!r} must be 1-64 letters, digits and _ . - "
            "(starting with a letter or digit)",
            code="bad_broker_user",
        )
    return name


def render_passwords(
    *, service: tuple[str, str] | None, gateways: Mapping[str, str], devices: Mapping[str, str]
) -> str:
    """The password file: ``service`` is (user, hash); gateways by name, devices by twin id."""
    entries: dict[str, str] = {}
    for twin_id, hashed in devices.items():
        entries[device_username(twin_id)] = hashed
    for name, hashed in gateways.items():
        entries[gateway_username(name)] = hashed
    if service is not None:
        if service[0] in entries:
            log.warning("broker user %r is the platform's; its device login is dropped", service[0])
        entries[service[0]] = service[1]
    return "# Written by TwinGraph (app.twins.broker_auth): edits are lost.\n" + password_file(
        entries
    )


def render_acl(
    *, service_user: str | None, gateways: Mapping[str, str], devices: Mapping[str, str]
) -> str:
    """The ACL file: the platform reads and writes everything, gateways publish readings,
    each device only its own twin's topics."""
    lines = ["# Written by TwinGraph (app.twins.broker_auth): edits are lost."]
    if service_user is not None:
        lines += ["", "# The platform.", f"user {service_user}", "topic readwrite #"]
    for name in sorted(gateways):
        lines += ["", "# A gateway: readings in, rejections out.", f"user {gateway_username(name)}"]
        lines += [f"topic {access} {topic}" for access, topic in _GATEWAY_TOPICS]
    for twin_id in sorted(t for t in devices if device_username(t) != t):
        # A twin id that is not its user name: the patterns below cannot name its topics.
        lines += ["", f"user {device_username(twin_id)}"]
        lines += [f"topic {access} {topic}" for access, topic in _device_topics(twin_id)]
    lines += ["", "# Every device: its own twin's topics only (user name = twin id)."]
    lines += [f"pattern {access} {topic}" for access, topic in _device_topics("%u")]
    return "\n".join(lines) + "\n"


def _device_topics(twin: str) -> list[tuple[str, str]]:
    return [("read", topics.topic(twin, kind)) for kind in DEVICE_READS] + [
        ("write", topics.topic(twin, kind)) for kind in DEVICE_WRITES
    ]


def service_password(path: Path) -> str:
    """The platform's broker password, generated once and kept in ``path`` (mode 0600)."""
    with contextlib.suppress(FileNotFoundError):
        if text := path.read_text().strip():
            return text
    path.parent.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    return password


# -- the tables ----------------------------------------------------------------------------


def remember_secret(db: ConnectionPool | Conn, twin_id: str, secret: str) -> None:
    """Keep the broker hash of a device secret just issued (in ``db``'s transaction when
    it is a connection)."""
    hashed = hash_password(secret)
    sql = (
        "INSERT INTO twin_broker_users (twin, hash) VALUES (%s, %s) ON CONFLICT (twin) "
        "DO UPDATE SET hash = excluded.hash, updated = clock_timestamp()"
    )
    if isinstance(db, ConnectionPool):
        with translate_errors("broker user"), db.connection() as conn:
            conn.execute(sql, (twin_id, hashed))
    else:
        db.execute(sql, (twin_id, hashed))


@dataclass(frozen=True, slots=True)
class BrokerUser:
    username: str
    role: str  # "device" or "gateway"
    name: str  # the twin id or gateway name
    since: datetime


class BrokerUsers:
    """The logins in PostgreSQL: devices' (``twin_broker_users``) and gateways'."""

    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    def devices(self) -> dict[str, str]:
        with translate_errors("broker users"), self.pool.connection() as conn:
            return dict(conn.execute("SELECT twin, hash FROM twin_broker_users").fetchall())

    def gateways(self) -> dict[str, str]:
        with translate_errors("broker users"), self.pool.connection() as conn:
            rows = conn.execute("SELECT name, hash FROM broker_users WHERE role = 'gateway'")
            return dict(rows.fetchall())

    def add(self, name: str, *, role: str) -> str:
        """A new gateway login; returns its password (shown once, stored as a hash)."""
        if role not in ROLES:
            raise InvalidInputError(
                f"Unknown broker role {role!r} (known: {', '.join(ROLES)}; devices log in "
                "with their twin id and device secret)",
                code="bad_broker_role",
            )
        name = check_gateway_name(name)
        password = "tgg_" + secrets.token_urlsafe(24)
        with translate_errors("broker users"), self.pool.connection() as conn:
            row = conn.execute(
                "INSERT INTO broker_users (name, role, hash) VALUES (%s, %s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING name",
                (name, role, hash_password(password)),
            ).fetchone()
        if row is None:
            raise ConflictError(f"Broker user {name!r} exists", code="broker_user_exists")
        return password

    def remove(self, name: str) -> None:
        with translate_errors("broker users"), self.pool.connection() as conn:
            gone = conn.execute("DELETE FROM broker_users WHERE name = %s", (name,)).rowcount
        if not gone:
            raise NotFoundError(f"No broker user {name!r}", code="broker_user_not_found")

    def all(self) -> list[BrokerUser]:
        with translate_errors("broker users"), self.pool.connection() as conn:
            gateways = conn.execute("SELECT name, role, created FROM broker_users").fetchall()
            devices = conn.execute("SELECT twin, updated FROM twin_broker_users").fetchall()
        users = [BrokerUser(gateway_username(n), r, n, t) for n, r, t in gateways]
        users += [BrokerUser(device_username(t), "device", t, at) for t, at in devices]
        return sorted(users, key=lambda u: (u.role, u.username))


# -- keeping the files current -------------------------------------------------------------


class BrokerAuth:
    """Renders the files from ``users`` and hands them to ``write(passwords, acl)`` when
    they change. ``service`` is the platform's (user, password); ``users`` None (no
    database) leaves the platform alone on the broker."""

    def __init__(
        self,
        *,
        users: BrokerUsers | None,
        service: tuple[str, str] | None,
        write: Callable[[str, str], object],
        interval_s: float = 5.0,
        debounce_s: float = 0.05,
    ) -> None:
        self.users = users
        self._service = (service[0], hash_password(service[1])) if service else None
        self._write = write
        self._interval = interval_s
        self._debounce = debounce_s
        self._written: tuple[str, str] | None = None
        self._kick = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        #: Times the files were written (a change, or the first sync).
        self.writes = 0

    def render(self) -> tuple[str, str]:
        devices = self.users.devices() if self.users else {}
        gateways = self.users.gateways() if self.users else {}
        service_user = self._service[0] if self._service else None
        return (
            render_passwords(service=self._service, gateways=gateways, devices=devices),
            render_acl(service_user=service_user, gateways=gateways, devices=devices),
        )

    def sync(self) -> bool:
        """Write the files if they changed since this object last wrote them."""
        with self._lock:
            files = self.render()
            if files == self._written:
                return False
            self._write(*files)
            self._written = files
            self.writes += 1
            return True

    def kick(self) -> None:
        """Sync soon (the background thread, after a short debounce)."""
        self._kick.set()

    def on_event(self, event: Event) -> None:
        if event.type in _TWIN_EVENTS or (
            event.type == "twin.updated" and "credential" in event.data
        ):
            self.kick()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="broker-auth", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._kick.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._kick.wait(self._interval) and self._stop.wait(self._debounce):
                break
            self._kick.clear()
            try:
                self.sync()
            except Exception:  # a database hiccup: the next round retries
                log.exception("could not update the broker's password and ACL files")
