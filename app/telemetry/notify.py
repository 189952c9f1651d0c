"""Live readings across processes: PostgreSQL NOTIFY payloads for committed writes.

Every telemetry write sends, right after its transaction commits (so only stored
readings are announced), notifications on :data:`CHANNEL`. A small batch announces every reading; a
large one (bulk imports) announces each point's newest reading only, so a backfill does
not flood listeners — live views want the newest value, history comes from the store.
A payload is a JSON array of ``[point uuid, ISO time, value]`` kept under PostgreSQL's
8000-byte NOTIFY limit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from uuid import UUID

import msgspec

from app.domain.telemetry import Reading

CHANNEL = "twingraph_readings"
#: Batches up to this size are announced whole; larger ones point by point (newest).
FULL_BATCH_MAX = 1000
MAX_PAYLOAD = 7000

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(list[tuple[str, str, bool | int | float | str | None]])


def payloads(readings: Sequence[Reading], newest: Iterable[Reading] | None = None) -> list[str]:
    """Notification payloads for a committed batch (``newest``: one reading per point)."""
    chosen = readings if len(readings) <= FULL_BATCH_MAX or newest is None else list(newest)
    out: list[str] = []
    chunk: list[bytes] = []
    size = 2
    for r in chosen:
        item = _encoder.encode([str(r.point), r.time.isoformat(), r.value])
        if chunk and size + len(item) + 1 > MAX_PAYLOAD:
            out.append("[" + b",".join(chunk).decode() + "]")
            chunk, size = [], 2
        chunk.append(item)
        size += len(item) + 1
    if chunk:
        out.append("[" + b",".join(chunk).decode() + "]")
    return out


def decode(payload: str) -> list[Reading]:
    """Readings from one payload; malformed payloads (not ours) give nothing."""
    try:
        items = _decoder.decode(payload)
        return [Reading(UUID(p), datetime.fromisoformat(t), v) for p, t, v in items]
    except (msgspec.DecodeError, ValueError):
        return []
