"""NOTIFY payloads for committed readings (app.telemetry.notify)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from app.domain.telemetry import Reading
from app.telemetry import notify


def test_large_batches_announce_each_points_newest_reading() -> None:
    points = [uuid.uuid4() for _ in range(3)]
    batch = [
        Reading(points[i % 3], datetime(2093, 1, 1, tzinfo=UTC) + timedelta(seconds=i), float(i))
        for i in range(notify.FULL_BATCH_MAX + 30)
    ]
    newest = {p: max((r for r in batch if r.point == p), key=lambda r: r.time) for p in points}
    payloads = notify.payloads(batch, newest.values())
    decoded = [r for p in payloads for r in notify.decode(p)]
    assert sorted(decoded, key=lambda r: str(r.point)) == sorted(
        newest.values(), key=lambda r: str(r.point)
    )
    small = notify.payloads(batch[:200])
    assert all(len(p.encode()) <= notify.MAX_PAYLOAD for p in small) and len(small) > 1
    assert [r for p in small for r in notify.decode(p)] == batch[:200]
    assert notify.decode("not json") == []
