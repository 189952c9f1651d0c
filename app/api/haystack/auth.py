"""The Haystack HTTP authentication flow (docHaystack/Auth) on top of SCRAM-SHA-256.

::

    GET /about   Authorization: HELLO username=<base64(user)>
    401          WWW-Authenticate: SCRAM handshakeToken=<t>, hash=SHA-256
    GET /about   Authorization: SCRAM handshakeToken=<t>, data=<base64(client-first)>
    401          WWW-Authenticate: SCRAM handshakeToken=<t>, hash=SHA-256, data=<server-first>
    GET /about   Authorization: SCRAM handshakeToken=<t>, data=<base64(client-final)>
    200          Authentication-Info: authToken=<token>, data=<base64(server-final)>

A HELLO may also carry ``data=<client-first>`` and is then answered like the first SCRAM
step (the shortened flow rusty-haystack's client uses).
    ...          Authorization: BEARER authToken=<token>

The auth token is a TwinGraph bearer token with the user's scope, so it also works as
``Authorization: Bearer <token>`` on the rest of the API. Handshakes live in memory for
``HANDSHAKE_TTL_S`` and can be finished once. A wrong password, an unknown user and an
expired handshake all answer 403 with the same message.
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass

from app.errors import ForbiddenError, InvalidInputError, UnauthorizedError
from app.security import scram
from app.security.haystack_users import MAX_SESSIONS, SESSION_LABEL, HaystackUsers
from app.security.tokens import Principal, TokenStore

HANDSHAKE_TTL_S = 60.0
MAX_HANDSHAKES = 10_000
_FAILED = "Authentication failed: unknown user, wrong password or expired handshake"


@dataclass(slots=True)
class _Handshake:
    username: str
    started: float
    client_first_bare: str | None = None
    server_first: str | None = None
    nonce: str | None = None


@dataclass(frozen=True, slots=True)
class Challenge:
    """Answer 401 with this ``WWW-Authenticate`` header."""

    header: str


@dataclass(frozen=True, slots=True)
class LoggedIn:
    principal: Principal
    #: The ``Authentication-Info`` header of the answer.
    header: str


def parse_authorization(header: str) -> tuple[str, dict[str, str], str]:
    """(scheme in lower case, ``name=value`` parameters, the raw rest)."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, eq, value = part.strip().partition("=")
        if eq and name:
            params[name.strip()] = value.strip()
    return scheme.lower(), params, rest.strip()


class HaystackAuth:
    def __init__(self, users: HaystackUsers, tokens: TokenStore) -> None:
        self.users = users
        self.tokens = tokens
        self._handshakes: dict[str, _Handshake] = {}
        self._lock = threading.Lock()

    # -- the handshake --------------------------------------------------------------------

    def hello(self, params: dict[str, str]) -> Challenge:
        """Start a handshake. A HELLO that already carries the client-first-message in
        ``data`` (rusty-haystack's shortened flow) is answered with the server-first."""
        encoded = params.get("username")
        if not encoded:
            raise InvalidInputError("HELLO needs username=<base64url(user name)>")
        try:
            username = scram.b64decode_any(encoded).decode()
        except (scram.ScramError, UnicodeDecodeError):
            raise InvalidInputError("HELLO username is not base64url text") from None
        token = secrets.token_hex(16)
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            if len(self._handshakes) >= MAX_HANDSHAKES:
                oldest = min(self._handshakes, key=lambda k: self._handshakes[k].started)
                del self._handshakes[oldest]
            shake = self._handshakes[token] = _Handshake(username, now)
            if params.get("data"):
                return self._first(token, shake, params["data"])
        return Challenge(f"SCRAM handshakeToken={token}, hash={scram.HASH}")

    def scram(self, params: dict[str, str]) -> Challenge | LoggedIn:
        token, data = params.get("handshakeToken", ""), params.get("data", "")
        if not token or not data:
            raise InvalidInputError("SCRAM needs handshakeToken= and data=")
        with self._lock:
            self._expire(time.monotonic())
            shake = self._handshakes.get(token)
            if shake is None:
                raise ForbiddenError(_FAILED, code="auth_failed")
            if shake.server_first is None:
                return self._first(token, shake, data)
            del self._handshakes[token]  # the final step is tried once
        return self._final(shake, data)

    def _first(self, token: str, shake: _Handshake, data: str) -> Challenge:
        try:
            client = scram.parse_client_first(scram.b64decode_any(data).decode())
        except (scram.ScramError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"Bad SCRAM client-first-message: {exc}") from None
        if client.username != shake.username:
            self._handshakes.pop(token, None)
            raise ForbiddenError(_FAILED, code="auth_failed")
        user = self.users.get(client.username)
        if user is not None:
            salt, iterations = user.credentials.salt, user.credentials.iterations
        else:
            salt, iterations = self.users.decoy_salt(client.username), scram.DEFAULT_ITERATIONS
        message, nonce = scram.server_first(client, salt, iterations)
        shake.client_first_bare, shake.server_first, shake.nonce = client.bare, message, nonce
        return Challenge(
            f"SCRAM handshakeToken={token}, hash={scram.HASH}, data={scram.b64_header(message)}"
        )

    def _final(self, shake: _Handshake, data: str) -> LoggedIn:
        assert shake.client_first_bare and shake.server_first and shake.nonce
        user = self.users.get(shake.username)
        try:
            final = scram.verify_client_final(
                scram.b64decode_any(data).decode(),
                client_first_bare=shake.client_first_bare,
                server_first_message=shake.server_first,
                nonce=shake.nonce,
                credentials=user.credentials if user else None,
            )
        except (scram.ScramError, UnicodeDecodeError):
            raise ForbiddenError(_FAILED, code="auth_failed") from None
        assert user is not None
        token = self.tokens.create(user.scope, label=SESSION_LABEL + user.name)
        self._prune_sessions(user.name)
        principal = self.tokens.verify(token)
        assert principal is not None
        return LoggedIn(principal, f"authToken={token}, data={scram.b64_header(final)}")

    def _expire(self, now: float) -> None:
        for key in [k for k, h in self._handshakes.items() if now - h.started > HANDSHAKE_TTL_S]:
            del self._handshakes[key]

    def _prune_sessions(self, username: str) -> None:
        label = SESSION_LABEL + username
        live = [t for t in self.tokens.list() if t.label == label and not t.revoked]
        for t in live[: max(0, len(live) - MAX_SESSIONS)]:
            self.tokens.revoke(t.token_id)

    # -- requests after login ------------------------------------------------------------

    def bearer(self, params: dict[str, str], raw: str) -> Principal:
        token = params.get("authToken") or raw
        principal = self.tokens.verify(token.strip()) if token else None
        if principal is None:
            raise UnauthorizedError(
                "The auth token is unknown, revoked or closed; log in again",
                code="invalid_token",
            )
        return principal

    def close(self, principal: Principal | None) -> bool:
        """Revoke the session token a Haystack login issued (other tokens are left alone)."""
        if principal is None or not principal.label.startswith(SESSION_LABEL):
            return False
        return self.tokens.revoke(principal.token_id)
