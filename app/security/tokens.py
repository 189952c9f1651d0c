"""Bearer tokens with scopes, stored hashed in a small SQLite file under the data dir.

A token is ``tg_<id>_<secret>``: 128 random bits of secret, so a plain SHA-256 of it is a
safe stored form (there is nothing to brute-force). Scopes nest: ``admin`` implies
``write``, which implies ``read``.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import time
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path

from app.errors import InvalidInputError


class Scope(IntEnum):
    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, name: str) -> Scope:
        try:
            return cls[name.strip().upper()]
        except KeyError:
            raise InvalidInputError(
                f"Unknown scope {name!r}; use read, write or admin", code="bad_scope"
            ) from None


@dataclass(frozen=True, slots=True)
class Principal:
    token_id: str
    scope: Scope
    label: str

    def allows(self, needed: Scope) -> bool:
        return self.scope >= needed


CACHE_SECONDS = 5.0

ANONYMOUS_READER = Principal(token_id="anonymous", scope=Scope.READ, label="anonymous")


@dataclass(frozen=True, slots=True)
class TokenInfo:
    token_id: str
    scope: Scope
    label: str
    created: float
    revoked: bool


class TokenStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._cache: dict[str, tuple[float, Principal | None]] = {}
        with self._connect() as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS tokens ("
                " id TEXT PRIMARY KEY, digest TEXT NOT NULL UNIQUE, scope TEXT NOT NULL,"
                " label TEXT NOT NULL, created REAL NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)"
            )

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10, isolation_level=None)

    def create(self, scope: Scope, label: str = "") -> str:
        token_id = secrets.token_hex(4)
        token = f"tg_{token_id}_{secrets.token_urlsafe(16)}"
        with self._connect() as db:
            db.execute(
                "INSERT INTO tokens (id, digest, scope, label, created) VALUES (?, ?, ?, ?, ?)",
                (token_id, _digest(token), scope.name.lower(), label, time.time()),
            )
        return token

    def cached(self, token: str) -> tuple[bool, Principal | None]:
        """``(True, verify(token))`` when the answer is cached (no I/O), else ``(False, None)``."""
        hit = self._cache.get(token)
        if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
            return True, hit[1]
        return False, None

    def verify(self, token: str) -> Principal | None:
        """The token's principal, or None. Answers are cached for a few seconds so that a
        busy API does not open SQLite on every request; revocation takes effect within
        ``CACHE_SECONDS``."""
        known, principal = self.cached(token)
        if known:
            return principal
        now = time.monotonic()
        principal = self._verify(token)
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[token] = (now, principal)
        return principal

    def _verify(self, token: str) -> Principal | None:
        parts = token.split("_", 2)
        if len(parts) != 3 or parts[0] != "tg":
            return None
        with self._connect() as db:
            row = db.execute(
                "SELECT digest, scope, label, revoked FROM tokens WHERE id = ?", (parts[1],)
            ).fetchone()
        if row is None or row[3] or not hmac.compare_digest(row[0], _digest(token)):
            return None
        return Principal(token_id=parts[1], scope=Scope.parse(row[1]), label=row[2])

    def still_valid(self, principal: Principal) -> bool:
        """Whether ``principal``'s token has not been revoked since it was verified (the
        anonymous reader always is); cached like ``verify``, so a long-lived stream that
        asks every few seconds notices a revocation within ``CACHE_SECONDS``."""
        if principal is ANONYMOUS_READER:
            return True
        key = "\0id:" + principal.token_id
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < CACHE_SECONDS:
            return hit[1] is not None
        with self._connect() as db:
            row = db.execute(
                "SELECT revoked FROM tokens WHERE id = ?", (principal.token_id,)
            ).fetchone()
        valid = row is not None and not row[0]
        self._cache[key] = (now, principal if valid else None)
        return valid

    def revoke(self, token_id: str) -> bool:
        with self._connect() as db:
            cur = db.execute("UPDATE tokens SET revoked = 1 WHERE id = ?", (token_id,))
        self._cache.clear()
        return cur.rowcount > 0

    def list(self) -> list[TokenInfo]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, scope, label, created, revoked FROM tokens ORDER BY created"
            ).fetchall()
        return [TokenInfo(r[0], Scope.parse(r[1]), r[2], r[3], bool(r[4])) for r in rows]


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
