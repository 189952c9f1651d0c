"""Mosquitto password-file entries, computed in Python.

Mosquitto 2 reads ``username:$7$<iterations>$<base64 salt>$<base64 hash>`` lines, the hash
being PBKDF2-HMAC-SHA512 over the password with a 12-byte salt (what ``mosquitto_passwd``
writes; 101 iterations is its default). Computing the entry here lets the platform write
the file without the ``mosquitto_passwd`` binary and at the one moment a device secret
exists in plain text (it is created or rotated), since afterwards only its digest is kept.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ITERATIONS = 101
SALT_BYTES = 12
_PREFIX = "$7$"


class PasswordFileError(ValueError):
    """A user name or hash that cannot go into a Mosquitto password file."""


def hash_password(password: str, *, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The ``$7$`` hash of ``password`` (a fresh random salt unless one is given)."""
    if salt is None:
        salt = secrets.token_bytes(SALT_BYTES)
    if iterations < 1:
        raise ValueError("iterations must be positive")
    derived = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations)
    return f"{_PREFIX}{iterations}${_b64(salt)}${_b64(derived)}"


def check_password(password: str, encoded: str) -> bool:
    """True when ``encoded`` (a ``$7$`` hash) is the hash of ``password``."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7" or not parts[2].isdigit():
        raise PasswordFileError("not a Mosquitto $7$ (PBKDF2-SHA512) hash")
    try:
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError as exc:
        raise PasswordFileError(f"bad base64 in hash: {exc}") from None
    derived = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, int(parts[2]))
    return hmac.compare_digest(derived, expected)


def check_username(name: str) -> str:
    """``name`` if Mosquitto can read it back from a password file (no ``:``, no line
    breaks or blanks at the ends, not empty)."""
    if not name or ":" in name or name != name.strip() or any(c in name for c in "\r\n\0"):
        raise PasswordFileError(f"{name!r} cannot be a Mosquitto user name")
    return name


def password_file(entries: dict[str, str]) -> str:
    """The file for ``{user name: $7$ hash}``, sorted by user name."""
    return "".join(f"{check_username(name)}:{entries[name]}\n" for name in sorted(entries))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
