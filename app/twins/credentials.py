"""Device credentials and signed MQTT messages.

Each twin has its own device secret (``tgd_`` + 192 random bits), shown once when the
twin is created or its secret rotated. The platform stores only its SHA-256 digest:

* over HTTP the device sends the secret (``Authorization: Bearer tgd_...``); the platform
  hashes it and looks the twin up by digest;
* over MQTT nothing secret travels. Every message, both ways, is an envelope
  ``{"body": "<JSON text>", "sig": "<hex>"}`` where ``sig`` is
  HMAC-SHA256(key, topic + "\\n" + body) and the key is SHA-256(secret). The topic names
  the twin, so a device can neither write another twin's topics nor replay one of its own
  messages on another twin's topic, and devices can check that what reaches them on
  their topics comes from the platform. The body carries ``ts`` (Unix seconds) for
  freshness.

Holding the digest therefore lets one sign MQTT messages (as a broker password file
would), but not use the HTTP device API, which needs the secret itself.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any

SECRET_PREFIX = "tgd_"


class EnvelopeError(ValueError):
    """A payload that is not a well-formed signed envelope."""


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(24)


def digest(secret: str) -> bytes:
    """The stored form of a secret, and the MQTT signing key."""
    return hashlib.sha256(secret.encode()).digest()


def sign(key: bytes, topic: str, body: str) -> str:
    return hmac.new(key, f"{topic}\n{body}".encode(), hashlib.sha256).hexdigest()


def seal(key: bytes, topic: str, body: Mapping[str, Any]) -> bytes:
    """The MQTT payload carrying ``body`` to or from the twin of ``topic``."""
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return json.dumps({"body": text, "sig": sign(key, topic, text)}).encode()


def unseal(payload: bytes) -> tuple[str, str]:
    """(body text, signature) of an envelope, unverified."""
    try:
        envelope = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise EnvelopeError(f"payload is not JSON: {exc}") from None
    if (
        not isinstance(envelope, dict)
        or not isinstance(envelope.get("body"), str)
        or not isinstance(envelope.get("sig"), str)
    ):
        raise EnvelopeError('payload must be {"body": "<JSON text>", "sig": "<hex HMAC>"}')
    return envelope["body"], envelope["sig"]


def verify(key: bytes, topic: str, body: str, signature: str) -> bool:
    return hmac.compare_digest(sign(key, topic, body), signature.lower())


def parse_body(text: str) -> dict[str, Any]:
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise EnvelopeError(f"body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise EnvelopeError("body must be a JSON object")
    return body


def open_body(key: bytes, topic: str, payload: bytes) -> dict[str, Any]:
    """The verified body of an envelope; EnvelopeError when malformed or forged."""
    text, signature = unseal(payload)
    if not verify(key, topic, text, signature):
        raise EnvelopeError("bad signature")
    return parse_body(text)
