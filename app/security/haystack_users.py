"""Haystack users: SCRAM-SHA-256 credentials with a TwinGraph scope.

Haystack clients log in with a user name and password (SCRAM); TwinGraph's own tokens have
no password to derive SCRAM keys from. So Haystack users are a small store of their own,
next to the tokens: per user a random salt, an iteration count (100k by default), and the
SCRAM ``StoredKey``/``ServerKey``, never the password. A successful login is answered with
a regular TwinGraph bearer token of the user's scope (label ``haystack:<user>``), which the
Haystack ``close`` op revokes; at most ``MAX_SESSIONS`` of them stay valid per user.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from app.errors import ConflictError, InvalidInputError, NotFoundError
from app.security import scram
from app.security.tokens import Scope

USERNAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_PASSWORD = 8
MAX_SESSIONS = 16
SESSION_LABEL = "haystack:"


@dataclass(frozen=True, slots=True)
class HaystackUser:
    name: str
    scope: Scope
    credentials: scram.Credentials
    created: float


def users_path(data_dir: Path) -> Path:
    return data_dir / "haystack-users.sqlite3"


class HaystackUsers:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, salt BLOB NOT NULL,"
                " iterations INTEGER NOT NULL, stored_key BLOB NOT NULL,"
                " server_key BLOB NOT NULL, scope TEXT NOT NULL, created REAL NOT NULL)"
            )
            db.execute("CREATE TABLE IF NOT EXISTS secret (id INTEGER PRIMARY KEY, value BLOB)")
            db.execute(
                "INSERT OR IGNORE INTO secret (id, value) VALUES (1, ?)", (secrets.token_bytes(32),)
            )
            row = db.execute("SELECT value FROM secret WHERE id = 1").fetchone()
        self._secret: bytes = row[0]

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10, isolation_level=None)

    def add(
        self,
        name: str,
        password: str,
        scope: Scope,
        *,
        iterations: int = scram.DEFAULT_ITERATIONS,
    ) -> HaystackUser:
        _check(name, password, iterations)
        creds = scram.derive(password, iterations=iterations)
        created = time.time()
        try:
            with self._connect() as db:
                db.execute(
                    "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        name,
                        creds.salt,
                        creds.iterations,
                        creds.stored_key,
                        creds.server_key,
                        scope.name.lower(),
                        created,
                    ),
                )
        except sqlite3.IntegrityError:
            raise ConflictError(f"Haystack user {name!r} exists", code="user_exists") from None
        return HaystackUser(name, scope, creds, created)

    def set_password(
        self, name: str, password: str, *, iterations: int = scram.DEFAULT_ITERATIONS
    ) -> None:
        _check(name, password, iterations)
        creds = scram.derive(password, iterations=iterations)
        with self._connect() as db:
            cur = db.execute(
                "UPDATE users SET salt = ?, iterations = ?, stored_key = ?, server_key = ?"
                " WHERE name = ?",
                (creds.salt, creds.iterations, creds.stored_key, creds.server_key, name),
            )
        if cur.rowcount == 0:
            raise NotFoundError(f"No Haystack user {name!r}", code="user_not_found")

    def remove(self, name: str) -> bool:
        with self._connect() as db:
            cur = db.execute("DELETE FROM users WHERE name = ?", (name,))
        return cur.rowcount > 0

    def get(self, name: str) -> HaystackUser | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT name, salt, iterations, stored_key, server_key, scope, created"
                " FROM users WHERE name = ?",
                (name,),
            ).fetchone()
        if row is None:
            return None
        creds = scram.Credentials(bytes(row[1]), int(row[2]), bytes(row[3]), bytes(row[4]))
        return HaystackUser(row[0], Scope.parse(row[5]), creds, float(row[6]))

    def list(self) -> list[HaystackUser]:
        with self._connect() as db:
            names = [r[0] for r in db.execute("SELECT name FROM users ORDER BY name")]
        return [u for u in (self.get(n) for n in names) if u is not None]

    def decoy_salt(self, name: str) -> bytes:
        """A salt for a user that does not exist: stable per name, so that probing names
        does not tell which exist."""
        digest = hmac.new(self._secret, name.encode(), hashlib.sha256).digest()
        salt = digest[:18]
        while set(scram.b64(salt)) & {"+", "/"}:
            digest = hashlib.sha256(digest).digest()
            salt = digest[:18]
        return salt


def _check(name: str, password: str, iterations: int) -> None:
    if not USERNAME.fullmatch(name):
        raise InvalidInputError(
            "A Haystack user name is 1-64 letters, digits or . _ @ -", code="bad_username"
        )
    if len(password) < MIN_PASSWORD:
        raise InvalidInputError(
            f"The password needs at least {MIN_PASSWORD} characters", code="weak_password"
        )
    if not scram.MIN_ITERATIONS <= iterations <= scram.MAX_ITERATIONS:
        raise InvalidInputError(
            f"iterations must be between {scram.MIN_ITERATIONS} and {scram.MAX_ITERATIONS}",
            code="bad_iterations",
        )
