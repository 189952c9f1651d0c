"""Twin rows in PostgreSQL: twins, their properties, and the state read back from them.

``twins`` holds one row per twin (identity, graph facts, labels, schemas, device status,
the desired version counters, the device secret's digest); ``twin_properties`` one row
per (twin, property) with the desired and the reported side. A desired property removed
by a merge patch stays as a tombstone (``desired`` NULL, version bumped) so the next delta
sent to the device carries the removal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

import psycopg
from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from app.errors import ConflictError
from app.events.model import Event
from app.telemetry.db import translate_errors
from app.twins.model import (
    LabelSelector,
    PropertyState,
    PropertyValue,
    SyncStatus,
    TwinState,
    json_equal,
)

Conn = psycopg.Connection[Any]

_TWIN_COLUMNS = (
    "id, iri, kind, point, graph, site, classes, labels, writable, online, last_heartbeat, "
    "transport, created, desired_version, delivered_version, acked_version, ack_error, "
    "schemas, actions"
)
_PROP_COLUMNS = (
    "twin, name, desired, desired_version, desired_time, reported, reported_version, reported_time"
)


@dataclass(frozen=True, slots=True)
class TwinRef:
    """What events and delivery need to know about a twin."""

    id: str
    iri: str
    kind: str
    point: UUID | None
    graph: str | None
    site: str | None
    classes: tuple[str, ...]
    online: bool
    transport: str | None
    writable: bool

    def event(
        self,
        type_: str,
        data: Mapping[str, Any] | None = None,
        *,
        ok: bool = True,
        author: str | None = None,
    ) -> Event:
        return Event(
            type=type_,
            data={"twinId": self.id, **(data or {})},
            twin=self.iri,
            graph=self.graph,
            site=self.site,
            classes=self.classes,
            ok=ok,
            author=author,
        )


_REF_COLUMNS = "id, iri, kind, point, graph, site, classes, online, transport, writable"


def _ref(row: Sequence[Any]) -> TwinRef:
    id_, iri, kind, point, graph, site, classes, online, transport, writable = row
    return TwinRef(id_, iri, kind, point, graph, site, tuple(classes), online, transport, writable)


def property_status(
    desired: PropertyValue | None,
    reported: PropertyValue | None,
    *,
    delivered_version: int,
    acked_version: int,
    ack_error: str | None,
) -> SyncStatus:
    if desired is None:
        return SyncStatus.REPORTED
    if reported is not None and json_equal(desired.value, reported.value):
        return SyncStatus.SYNCED
    if acked_version >= desired.version:
        return SyncStatus.FAILED if ack_error else SyncStatus.ACKNOWLEDGED
    if delivered_version >= desired.version:
        return SyncStatus.DELIVERED
    return SyncStatus.PENDING


def build_state(
    twin: Sequence[Any],
    props: Iterable[Sequence[Any]],
    *,
    as_of: datetime | None = None,
) -> TwinState:
    (
        id_,
        iri,
        kind,
        point,
        graph,
        site,
        classes,
        labels,
        writable,
        online,
        last_heartbeat,
        transport,
        created,
        desired_version,
        delivered_version,
        acked_version,
        ack_error,
        schemas,
        actions,
    ) = twin
    properties: dict[str, PropertyState] = {}
    for _twin, name, d, dv, dt, r, rv, rt in props:
        desired = PropertyValue(d, dv, dt) if d is not None else None
        reported = PropertyValue(r, rv, rt) if r is not None else None
        if desired is None and reported is None:
            continue  # a tombstone
        properties[name] = PropertyState(
            name,
            desired,
            reported,
            property_status(
                desired,
                reported,
                delivered_version=delivered_version,
                acked_version=acked_version,
                ack_error=ack_error,
            ),
        )
    return TwinState(
        id=id_,
        iri=iri,
        kind=kind,
        point=point,
        graph=graph,
        site=site,
        labels=dict(labels or {}),
        classes=tuple(classes or ()),
        writable=writable,
        online=online,
        last_heartbeat=last_heartbeat,
        transport=transport,
        created=created,
        desired_version=desired_version,
        delivered_version=delivered_version,
        acknowledged_version=acked_version,
        ack_error=ack_error,
        schemas=dict(schemas or {}),
        actions=dict(actions or {}),
        properties=properties,
        as_of=as_of,
    )


class TwinStore:
    def __init__(self, pool: ConnectionPool) -> None:
        self.pool = pool

    # -- identity ----------------------------------------------------------------------------

    def insert(
        self,
        conn: Conn,
        *,
        twin_id: str,
        iri: str,
        kind: str,
        point: UUID | None,
        graph: str | None,
        site: str | None,
        site_set: bool,
        classes: Sequence[str],
        labels: Mapping[str, str],
        writable: bool,
        schemas: Mapping[str, Any],
        actions: Mapping[str, Any],
        secret_hash: bytes | None,
        td: Mapping[str, Any] | None,
    ) -> None:
        try:
            with conn.transaction():
                conn.execute(
                    "INSERT INTO twins (id, iri, kind, point, graph, site, site_set, classes, "
                    "labels, writable, schemas, actions, secret_hash, td) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        twin_id,
                        iri,
                        kind,
                        point,
                        graph,
                        site,
                        site_set,
                        list(classes),
                        Jsonb(dict(labels)),
                        writable,
                        Jsonb(dict(schemas)),
                        Jsonb(dict(actions)),
                        secret_hash,
                        Jsonb(dict(td)) if td is not None else None,
                    ),
                )
        except pg_errors.UniqueViolation as exc:
            constraint = exc.diag.constraint_name or ""
            if "iri" in constraint or "point" in constraint:
                raise ConflictError(f"<{iri}> already has a twin", code="twin_exists") from None
            raise ConflictError(f"The twin id {twin_id!r} is taken", code="twin_id_taken") from None

    def taken_ids(self, candidates: Sequence[str]) -> set[str]:
        with translate_errors("twin read"), self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT id FROM twins WHERE id = ANY(%s)", (list(candidates),)
            ).fetchall()
        return {r[0] for r in rows}

    def ref(self, twin_id: str, conn: Conn | None = None) -> TwinRef | None:
        refs = self.refs([twin_id], conn)
        return refs.get(twin_id)

    def refs(self, ids: Sequence[str], conn: Conn | None = None) -> dict[str, TwinRef]:
        sql = f"SELECT {_REF_COLUMNS} FROM twins WHERE id = ANY(%s)"  # noqa: S608
        if conn is not None:
            rows = conn.execute(sql, (list(ids),)).fetchall()
        else:
            with translate_errors("twin read"), self.pool.connection() as c:
                rows = c.execute(sql, (list(ids),)).fetchall()
        return {r[0]: _ref(r) for r in rows}

    def find(self, *, iri: str | None = None, point: UUID | None = None) -> str | None:
        with translate_errors("twin read"), self.pool.connection() as conn:
            if iri is not None:
                row = conn.execute("SELECT id FROM twins WHERE iri = %s", (iri,)).fetchone()
            else:
                row = conn.execute("SELECT id FROM twins WHERE point = %s", (point,)).fetchone()
        return row[0] if row else None

    def ids_for_iris(self, iris: Iterable[str]) -> dict[str, str]:
        """IRI -> twin id for the IRIs that have a twin."""
        with translate_errors("twin read"), self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT iri, id FROM twins WHERE iri = ANY(%s)", (list(iris),)
            ).fetchall()
        return {r[0]: r[1] for r in rows}

    def point_twins(self) -> dict[UUID, str]:
        with translate_errors("twin read"), self.pool.connection() as conn:
            rows = conn.execute("SELECT point, id FROM twins WHERE point IS NOT NULL").fetchall()
        return {r[0]: r[1] for r in rows}

    def iris(self) -> dict[str, tuple[str, bool]]:
        """Twin id -> (IRI, site set by a user), for refreshing graph facts."""
        with translate_errors("twin read"), self.pool.connection() as conn:
            rows = conn.execute("SELECT id, iri, site_set FROM twins").fetchall()
        return {r[0]: (r[1], r[2]) for r in rows}

    def set_graph_facts(
        self,
        twin_id: str,
        *,
        graph: str | None,
        site: str | None,
        classes: Sequence[str],
        writable: bool,
        keep_site: bool,
    ) -> None:
        with translate_errors("twin update"), self.pool.connection() as conn:
            conn.execute(
                "UPDATE twins SET graph = %s, classes = %s, writable = %s, "
                "site = CASE WHEN %s THEN site ELSE %s END WHERE id = %s",
                (graph, list(classes), writable, keep_site, site, twin_id),
            )

    # -- listing ---------------------------------------------------------------------------

    def select_ids(
        self,
        *,
        labels: LabelSelector | None = None,
        iris: Iterable[str] | None = None,
        site: str | None = None,
        online: bool | None = None,
        kind: str | None = None,
        after: str | None = None,
        limit: int | None = None,
    ) -> list[str]:
        clauses: list[str] = []
        params: list[Any] = []
        for r in labels.requirements if labels else ():
            if r.op == "=":
                clauses.append("labels @> %s")
                params.append(Jsonb({r.key: r.value}))
            elif r.op == "!=":
                clauses.append("NOT labels @> %s")
                params.append(Jsonb({r.key: r.value}))
            elif r.op == "exists":
                clauses.append("labels ? %s")
                params.append(r.key)
            else:
                clauses.append("NOT labels ? %s")
                params.append(r.key)
        if iris is not None:
            clauses.append("iri = ANY(%s)")
            params.append(list(iris))
        if site is not None:
            clauses.append("site = %s")
            params.append(site)
        if online is not None:
            clauses.append("online = %s")
            params.append(online)
        if kind is not None:
            clauses.append("kind = %s")
            params.append(kind)
        if after is not None:
            clauses.append("id > %s")
            params.append(after)
        where = " AND ".join(clauses) or "true"
        sql = f"SELECT id FROM twins WHERE {where} ORDER BY id"  # noqa: S608
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with translate_errors("twin read"), self.pool.connection() as conn:
            return [r[0] for r in conn.execute(sql, params).fetchall()]

    # -- state -------------------------------------------------------------------------------

    def state(self, twin_id: str, conn: Conn | None = None) -> TwinState | None:
        found = self.states([twin_id], conn)
        return found[0] if found else None

    def states(self, ids: Sequence[str], conn: Conn | None = None) -> list[TwinState]:
        if conn is None:
            with translate_errors("twin read"), self.pool.connection() as c:
                return self.states(ids, c)
        twins = conn.execute(
            f"SELECT {_TWIN_COLUMNS} FROM twins WHERE id = ANY(%s) ORDER BY id",  # noqa: S608
            (list(ids),),
        ).fetchall()
        props: dict[str, list[Sequence[Any]]] = {}
        for row in conn.execute(
            f"SELECT {_PROP_COLUMNS} FROM twin_properties WHERE twin = ANY(%s)",  # noqa: S608
            (list(ids),),
        ).fetchall():
            props.setdefault(row[0], []).append(row)
        return [build_state(t, props.get(t[0], ())) for t in twins]

    def schemas(self, conn: Conn, twin_id: str) -> dict[str, Any] | None:
        row = conn.execute("SELECT schemas FROM twins WHERE id = %s", (twin_id,)).fetchone()
        return dict(row[0] or {}) if row else None

    # -- secrets -----------------------------------------------------------------------------

    def set_secret(self, twin_id: str, secret_hash: bytes, conn: Conn | None = None) -> None:
        sql = "UPDATE twins SET secret_hash = %s WHERE id = %s"
        if conn is not None:
            conn.execute(sql, (secret_hash, twin_id))
            return
        with translate_errors("twin update"), self.pool.connection() as c:
            c.execute(sql, (secret_hash, twin_id))

    def by_secret(self, secret_hash: bytes) -> str | None:
        with translate_errors("device authentication"), self.pool.connection() as conn:
            row = conn.execute(
                "SELECT id FROM twins WHERE secret_hash = %s", (secret_hash,)
            ).fetchone()
        return row[0] if row else None

    def keys(self, ids: Sequence[str]) -> dict[str, bytes]:
        with translate_errors("twin read"), self.pool.connection() as conn:
            rows = conn.execute(
                "SELECT id, secret_hash FROM twins WHERE id = ANY(%s) AND secret_hash IS NOT NULL",
                (list(ids),),
            ).fetchall()
        return {r[0]: bytes(r[1]) for r in rows}
