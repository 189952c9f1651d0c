"""SCRAM-SHA-256 (RFC 5802 / RFC 7677): the arithmetic and message formats, both sides.

No channel binding (``n,,``). The server keeps only ``StoredKey`` and ``ServerKey`` with the
salt and iteration count, never the password or anything that logs in as the user by itself.

Base64: RFC 5802 messages use standard base64 inside; Haystack wraps whole messages in
base64 too (base64url in the spec). Implementations differ in alphabet and padding, so
decoding accepts either; salts are drawn so that their standard encoding has no ``+``/``/``
(both alphabets then agree), and a message of ASCII without ``>?~`` encodes the same in
both alphabets, so one padded encoding (``b64_header``) suits every client we know.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

HASH = "SHA-256"
DEFAULT_ITERATIONS = 100_000
MIN_ITERATIONS = 4096
MAX_ITERATIONS = 10_000_000
_GS2_HEADER = "n,,"


class ScramError(ValueError):
    """A malformed SCRAM message or a failed proof."""


def b64url(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def b64_header(data: bytes | str) -> str:
    """A SCRAM message for a Haystack header: padded base64. For the ASCII messages SCRAM
    exchanges the two alphabets coincide, and padded text is what strict decoders (Rust's
    ``base64`` STANDARD engine) need while lenient ones (phable, Java's URL decoder) accept
    it too."""
    raw = data.encode() if isinstance(data, str) else data
    return base64.b64encode(raw).decode()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def b64decode_any(text: str) -> bytes:
    """Either alphabet, with or without padding."""
    cleaned = text.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4), validate=True)
    except ValueError as exc:
        raise ScramError(f"bad base64: {exc}") from None


def new_salt() -> bytes:
    while True:
        salt = secrets.token_bytes(18)  # 24 characters, no padding
        if not set(b64(salt)) & {"+", "/"}:
            return salt


def new_nonce() -> str:
    return secrets.token_hex(16)


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)


@dataclass(frozen=True, slots=True)
class Credentials:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def derive(
    password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS
) -> Credentials:
    if not MIN_ITERATIONS <= iterations <= MAX_ITERATIONS:
        raise ValueError(f"iterations must be between {MIN_ITERATIONS} and {MAX_ITERATIONS}")
    salt = salt or new_salt()
    salted = salted_password(password, salt, iterations)
    client_key = _hmac(salted, b"Client Key")
    return Credentials(
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.sha256(client_key).digest(),
        server_key=_hmac(salted, b"Server Key"),
    )


def _attrs(message: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in message.split(","):
        if len(part) < 2 or part[1] != "=":
            raise ScramError(f"bad SCRAM attribute {part!r}")
        out.setdefault(part[0], part[2:])
    return out


def _unescape(name: str) -> str:
    if "=" in name.replace("=2C", "").replace("=3D", ""):
        raise ScramError("bad '=' escape in the SCRAM user name")
    return name.replace("=2C", ",").replace("=3D", "=")


def _escape(name: str) -> str:
    return name.replace("=", "=3D").replace(",", "=2C")


# -- server side ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClientFirst:
    username: str
    nonce: str
    bare: str


def parse_client_first(message: str) -> ClientFirst:
    if not message.startswith(("n,", "y,")):
        raise ScramError("channel binding is not supported; the message must start with 'n,,'")
    parts = message.split(",", 2)
    if len(parts) != 3 or parts[1]:
        raise ScramError("authorization identities are not supported")
    bare = parts[2]
    attrs = _attrs(bare)
    if "n" not in attrs or "r" not in attrs or not attrs["r"]:
        raise ScramError("client-first-message needs n= and r=")
    return ClientFirst(_unescape(attrs["n"]), attrs["r"], bare)


def server_first(client: ClientFirst, salt: bytes, iterations: int) -> tuple[str, str]:
    """(server-first-message, combined nonce)."""
    nonce = client.nonce + new_nonce()
    return f"r={nonce},s={b64(salt)},i={iterations}", nonce


def verify_client_final(
    message: str,
    *,
    client_first_bare: str,
    server_first_message: str,
    nonce: str,
    credentials: Credentials | None,
) -> str:
    """Check a client-final-message; returns the server-final-message (``v=...``).

    ``credentials=None`` (an unknown user) fails like a wrong password, after the same work.
    """
    head, sep, proof_text = message.rpartition(",p=")
    if not sep:
        raise ScramError("client-final-message has no proof")
    attrs = _attrs(head)
    if attrs.get("r") != nonce:
        raise ScramError("nonce mismatch")
    if b64decode_any(attrs.get("c", "")) != _GS2_HEADER.encode():
        raise ScramError("channel binding data mismatch")
    proof = b64decode_any(proof_text)
    auth_message = f"{client_first_bare},{server_first_message},{head}".encode()
    stored = credentials.stored_key if credentials else secrets.token_bytes(32)
    signature = _hmac(stored, auth_message)
    if len(proof) != len(signature):
        raise ScramError("bad proof length")
    client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=True))
    ok = hmac.compare_digest(hashlib.sha256(client_key).digest(), stored)
    if not ok or credentials is None:
        raise ScramError("authentication failed")
    return "v=" + b64(_hmac(credentials.server_key, auth_message))


# -- client side ---------------------------------------------------------------------


class ScramClient:
    """One SCRAM conversation from the client's side."""

    def __init__(self, username: str, password: str, *, nonce: str | None = None) -> None:
        self.username = username
        self.password = password
        self.nonce = nonce or new_nonce()
        self.bare = f"n={_escape(username)},r={self.nonce}"
        self._auth_message = b""
        self._server_key = b""

    def first(self) -> str:
        return _GS2_HEADER + self.bare

    def final(self, server_first_message: str) -> str:
        attrs = _attrs(server_first_message)
        nonce, salt, iterations = attrs.get("r", ""), attrs.get("s", ""), attrs.get("i", "")
        if not nonce.startswith(self.nonce) or not salt or not iterations.isdigit():
            raise ScramError("bad server-first-message")
        rounds = int(iterations)
        if not MIN_ITERATIONS <= rounds <= MAX_ITERATIONS:
            raise ScramError(f"the server asks for {rounds} iterations")
        salted = salted_password(self.password, b64decode_any(salt), rounds)
        client_key = _hmac(salted, b"Client Key")
        head = f"c={b64(_GS2_HEADER.encode())},r={nonce}"
        self._auth_message = f"{self.bare},{server_first_message},{head}".encode()
        signature = _hmac(hashlib.sha256(client_key).digest(), self._auth_message)
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        self._server_key = _hmac(salted, b"Server Key")
        return f"{head},p={b64(proof)}"

    def verify(self, server_final_message: str) -> None:
        attrs = _attrs(server_final_message)
        if "e" in attrs:
            raise ScramError(f"server error: {attrs['e']}")
        expected = _hmac(self._server_key, self._auth_message)
        if not hmac.compare_digest(b64decode_any(attrs.get("v", "")), expected):
            raise ScramError("the server's signature does not match: not the server we know")
