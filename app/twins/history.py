"""Twin state history: delta-sampled snapshots, refined by the event log, for "as of T".

After each change the service asks for a snapshot; one is written only when more than
``delta`` has passed since the twin's last one (so a chatty device costs one row per
delta, not one per message). The state as of T is the newest snapshot at or before T with
the twin's events between that snapshot and T applied on top: every twin event carries
absolute values (property values with their versions, the online flag), so applying one
twice changes nothing, and the answer is exact, not just delta-accurate. Should the event
log have been pruned, the answer falls back to the snapshot's resolution.

Snapshot consistency: the newest event id is read *before* the state. A change whose
event id is at most that id committed its state first, so the state read includes it;
a later change may or may not be in it, and is replayed either way.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from typing import Any

from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from app.errors import NotFoundError
from app.telemetry.db import translate_errors
from app.twins.model import PropertyState, PropertyValue, TwinState
from app.twins.store import Conn, TwinRef, TwinStore, property_status

#: How long after a change's own time its event may commit.
EFFECT_MARGIN = timedelta(seconds=60)


def state_to_json(state: TwinState) -> dict[str, Any]:
    doc = state.as_dict()
    doc.pop("sync", None)
    doc.pop("asOf", None)
    return doc


def _value(doc: dict[str, Any] | None) -> PropertyValue | None:
    if doc is None:
        return None
    return PropertyValue(doc["value"], int(doc["version"]), datetime.fromisoformat(doc["time"]))


def state_from_json(doc: dict[str, Any], *, as_of: datetime | None = None) -> TwinState:
    from uuid import UUID

    desired: dict[str, Any] = doc.get("desired", {})
    reported: dict[str, Any] = doc.get("reported", {})
    delivered, acked = int(doc["deliveredVersion"]), int(doc["acknowledgedVersion"])
    props = {}
    for name in sorted(set(desired) | set(reported)):
        d, r = _value(desired.get(name)), _value(reported.get(name))
        props[name] = PropertyState(
            name,
            d,
            r,
            property_status(
                d, r, delivered_version=delivered, acked_version=acked, ack_error=doc["ackError"]
            ),
        )
    heartbeat = doc.get("lastHeartbeat")
    return TwinState(
        id=doc["id"],
        iri=doc["iri"],
        kind=doc["kind"],
        point=UUID(doc["point"]) if doc.get("point") else None,
        graph=doc.get("graph"),
        site=doc.get("site"),
        labels=dict(doc.get("labels", {})),
        classes=tuple(doc.get("classes", ())),
        writable=bool(doc.get("writable")),
        online=bool(doc.get("online")),
        last_heartbeat=datetime.fromisoformat(heartbeat) if heartbeat else None,
        transport=doc.get("transport"),
        created=datetime.fromisoformat(doc["created"]),
        desired_version=int(doc["desiredVersion"]),
        delivered_version=delivered,
        acknowledged_version=acked,
        ack_error=doc.get("ackError"),
        schemas=dict(doc.get("schemas", {})),
        actions=dict(doc.get("actions", {})),
        properties=props,
        as_of=as_of,
    )


def apply_event(doc: dict[str, Any], type_: str, time: datetime, data: dict[str, Any]) -> None:
    """Apply one twin event (as the service writes them) to a state document."""
    if type_ in ("desired.set", "reported") and data.get("version") is not None:
        side = "desired" if type_ == "desired.set" else "reported"
        when = data.get("time") or time.isoformat()
        for name, value in (data.get("props") or {}).items():
            if value is None:
                doc[side].pop(name, None)
            else:
                doc[side][name] = {"value": value, "version": data["version"], "time": when}
        if side == "desired":
            doc["desiredVersion"] = max(int(doc["desiredVersion"]), int(data["version"]))
    elif type_ == "desired.delivered":
        doc["deliveredVersion"] = max(int(doc["deliveredVersion"]), int(data["version"]))
    elif type_ == "desired.acknowledged":
        doc["acknowledgedVersion"] = max(int(doc["acknowledgedVersion"]), int(data["version"]))
        doc["ackError"] = data.get("error")
    elif type_ == "device.online":
        doc["online"] = True
        doc["lastHeartbeat"] = data.get("time") or time.isoformat()
        doc["transport"] = data.get("transport", doc.get("transport"))
    elif type_ == "device.offline":
        doc["online"] = False
    elif type_ == "twin.updated":
        for key in ("labels", "site", "schemas", "actions"):
            if key in data:
                doc[key] = data[key]


class TwinHistory:
    def __init__(self, pool: ConnectionPool, store: TwinStore, *, delta: timedelta) -> None:
        self._pool = pool
        self._store = store
        self.delta = delta
        #: twin id -> monotonic time of its newest known snapshot.
        self._recent: dict[str, float] = {}

    def maybe_snapshot(self, twin_id: str, *, force: bool = False) -> bool:
        """Snapshot the twin if its last snapshot is older than ``delta``; True if taken.

        This process remembers when each twin's last snapshot was, so inside the delta a
        change costs no query at all."""
        if not force:
            known = self._recent.get(twin_id)
            if known is not None and time.monotonic() - known < self.delta.total_seconds():
                return False
        with translate_errors("twin snapshot"), self._pool.connection() as conn:
            return self._snapshot(conn, twin_id, force=force)

    def _snapshot(self, conn: Conn, twin_id: str, *, force: bool) -> bool:
        with conn.transaction():
            row = conn.execute(
                "WITH cur AS (SELECT id, iri, snapshot_at, clock_timestamp() AS now FROM twins "
                "WHERE id = %s FOR UPDATE), "
                "upd AS (UPDATE twins t SET snapshot_at = cur.now FROM cur WHERE t.id = cur.id "
                "AND (%s OR cur.snapshot_at IS NULL OR cur.snapshot_at <= cur.now - %s) "
                "RETURNING t.id) "
                "SELECT cur.iri, cur.snapshot_at, cur.now, upd.id IS NOT NULL FROM cur "
                "LEFT JOIN upd ON true",
                (twin_id, force, self.delta),
            ).fetchone()
            if row is None:
                return False
            iri, previous, now, due = row
            if not due:
                age = (now - previous).total_seconds()
                self._recent[twin_id] = time.monotonic() - age
                return False
            last = conn.execute(
                "SELECT coalesce(max(id), 0) FROM events WHERE twin = %s", (iri,)
            ).fetchone()
            state = self._store.state(twin_id, conn)
            if state is None:
                return False
            conn.execute(
                "INSERT INTO twin_snapshots (twin, time, event_id, state) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING",
                (twin_id, now, last[0] if last else 0, Jsonb(state_to_json(state))),
            )
        if len(self._recent) > 100_000:
            self._recent.clear()
        self._recent[twin_id] = time.monotonic()
        return True

    def as_of(self, ref: TwinRef, when: datetime) -> TwinState:
        with translate_errors("twin history"), self._pool.connection() as conn:
            snap = conn.execute(
                "SELECT time, event_id, state FROM twin_snapshots WHERE twin = %s AND time <= %s "
                "ORDER BY time DESC LIMIT 1",
                (ref.id, when),
            ).fetchone()
            if snap is None:
                raise NotFoundError(
                    f"Twin {ref.id!r} did not exist at {when.isoformat()}",
                    code="twin_not_found_at",
                )
            _, event_id, doc = snap
            # A change takes effect at the time it carries (stamped inside its transaction,
            # a moment before its event commits), so look a little past ``when``.
            events = conn.execute(
                "SELECT type, time, data FROM events WHERE twin = %s AND id > %s AND time <= %s "
                "AND ok ORDER BY id",
                (ref.iri, event_id, when + EFFECT_MARGIN),
            ).fetchall()
        for type_, committed, data in events:
            data = data or {}
            effective = datetime.fromisoformat(data["time"]) if data.get("time") else committed
            if effective <= when:
                apply_event(doc, type_, committed, data)
        return state_from_json(doc, as_of=when)

    def snapshots(
        self,
        twin_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[tuple[datetime, TwinState]]:
        clauses, params = ["twin = %s"], [twin_id]
        if since is not None:
            clauses.append("time >= %s")
            params.append(since)  # type: ignore[arg-type]
        if until is not None:
            clauses.append("time <= %s")
            params.append(until)  # type: ignore[arg-type]
        with translate_errors("twin history"), self._pool.connection() as conn:
            rows = conn.execute(
                f"SELECT time, state FROM twin_snapshots WHERE {' AND '.join(clauses)} "  # noqa: S608
                f"ORDER BY time LIMIT {int(limit)}",
                params,
            ).fetchall()
        return [(t, state_from_json(doc, as_of=t)) for t, doc in rows]
