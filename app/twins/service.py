"""The twin service: twins of graph entities, desired and reported state, device status.

Every public method is keyword-friendly and typed so that each API surface (REST, the
device channel, GraphQL) calls the same code. Each operation commits its change and the
events describing it (``desired.set``, ``reported``, ``synced``, ``device.online``, ...)
in one PostgreSQL transaction (``changing``: the bus's outbox), so an event is published
exactly when its change commits; events carry the twin's IRI, graph, site and classes.
An operation refused for bad input changes nothing: it publishes the same event type with
``ok=False`` on its own (``emit``) and raises. Delivery to devices is not done here: the
runtime reacts to the events (``app.twins.runtime``), so a desired value set in any
process reaches a device connected to the server process.

``commands``, ``jobs`` and ``history`` hang off the service as their own components.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from app.domain.telemetry import Reading
from app.errors import AppError, ConflictError, InvalidInputError, NotFoundError
from app.events.bus import EventBus, Outbox
from app.events.model import Event
from app.events.selectors import expand_curie
from app.graph.entities import expand_iri
from app.graph.sparql import SparqlService
from app.points import PointDirectory, timeseries_uuid
from app.telemetry.db import translate_errors
from app.telemetry.readings import TelemetryStore
from app.twins import credentials
from app.twins.broker_auth import remember_secret
from app.twins.entities import EntityInfo, TwinEntities
from app.twins.history import TwinHistory
from app.twins.model import (
    COMMAND_NAME,
    POINT_VALUE,
    RESERVED_IDS,
    TwinState,
    check_labels,
    check_property_name,
    check_twin_id,
    json_equal,
    slug,
)
from app.twins.schemas import check_schema, check_value
from app.twins.store import Conn, TwinRef, TwinStore

log = logging.getLogger("twingraph.twins")


@dataclass(frozen=True, slots=True)
class TwinSettings:
    #: A device is offline after this long without a heartbeat (or any message).
    heartbeat_timeout_s: float = 90.0
    #: State history: a new snapshot only when more than this has passed since the last.
    snapshot_delta_s: float = 60.0
    default_command_ttl_s: float = 3600.0
    max_command_ttl_s: float = 30 * 86400.0


@dataclass(frozen=True, slots=True)
class PointValue:
    """A point's last-known value, and its twin when it has one."""

    point: UUID
    iri: str
    writable: bool
    latest: Reading | None
    twin: TwinState | None

    def as_dict(self) -> dict[str, Any]:
        desired = reported = None
        status = None
        if self.twin is not None and POINT_VALUE in self.twin.properties:
            prop = self.twin.properties[POINT_VALUE]
            desired = prop.desired.as_dict() if prop.desired else None
            reported = prop.reported.as_dict() if prop.reported else None
            status = prop.status.value
        return {
            "point": str(self.point),
            "iri": self.iri,
            "writable": self.writable,
            "value": self.latest.value if self.latest else None,
            "time": self.latest.time.isoformat() if self.latest else None,
            "twin": self.twin.id if self.twin else None,
            "desired": desired,
            "reported": reported,
            "sync": status,
        }


def _lock_checked(
    conn: psycopg.Connection[Any],
    twin_id: str,
    version_column: LiteralString,
    props: Mapping[str, Any],
) -> tuple[int, datetime]:
    """Lock the twin's row for a desired or reported write and check ``props`` against
    its schemas; returns the current ``version_column`` and the database's clock."""
    row = conn.execute(
        f"SELECT {version_column}, schemas, clock_timestamp() FROM twins WHERE id = %s FOR UPDATE",
        (twin_id,),
    ).fetchone()
    if row is None:
        raise NotFoundError(f"Twin {twin_id!r} was deleted", code="twin_not_found")
    schemas = row[1] or {}
    for name, value in props.items():
        if value is not None:
            check_value(name, value, schemas.get(name))
    return row[0], row[2]


def _now() -> datetime:
    return datetime.now(UTC)


class TwinService:
    def __init__(
        self,
        *,
        pool: ConnectionPool,
        bus: EventBus,
        entities: TwinEntities,
        points: PointDirectory,
        sparql: SparqlService,
        telemetry: TelemetryStore | None = None,
        settings: TwinSettings | None = None,
    ) -> None:
        from app.twins.commands import CommandService
        from app.twins.jobs import JobService

        self.settings = settings or TwinSettings()
        self.pool = pool
        self.bus = bus
        self.entities = entities
        self.points = points
        self.sparql = sparql
        self.telemetry = telemetry
        self.store = TwinStore(pool)
        self.history = TwinHistory(
            pool, self.store, delta=timedelta(seconds=self.settings.snapshot_delta_s)
        )
        self.commands = CommandService(self)
        self.jobs = JobService(self)
        #: The background services of this process, when started (``app.twins.runtime``).
        self.runtime: Any = None
        #: Called with each event this process emits, right after it is committed.
        self.listeners: list[Callable[[Event], None]] = []
        self._point_twins: dict[UUID, str] | None = None
        self._point_twins_at = 0.0
        self._lock = threading.Lock()

    # -- events ------------------------------------------------------------------------------

    def emit(
        self,
        ref: TwinRef,
        type_: str,
        data: Mapping[str, Any] | None = None,
        *,
        ok: bool = True,
        author: str | None = None,
    ) -> None:
        """Publish an event with no state change to commit with it (a refusal) on its
        own; failures are logged. Local listeners hear it at once."""
        stored = self.bus.publish_safely(ref.event(type_, data, ok=ok, author=author))
        self._heard([stored or ref.event(type_, data, ok=ok, author=author)])

    @contextmanager
    def changing(self, what: str) -> Iterator[Outbox]:
        """One transaction (``box.conn``) for a change and the events describing it
        (``box.add``): both commit, or neither does. Local listeners hear the events after
        the commit (the bus reaches other processes a moment later); database errors
        become ``AppError``s named after ``what``."""
        with (
            translate_errors(what),
            self.pool.connection() as conn,
            self.bus.outbox(conn) as box,
        ):
            yield box
        self._heard(box.published)

    def _heard(self, events: Sequence[Event]) -> None:
        for event in events:
            for listener in list(self.listeners):
                try:
                    listener(event)
                except Exception:
                    log.exception("twin event listener failed on %s", event.type)

    @contextmanager
    def failing_as(self, ref: TwinRef, type_: str, *, author: str | None = None) -> Iterator[None]:
        """Publish ``type_`` with ``ok=False`` (code and detail) when the body raises."""
        try:
            yield
        except AppError as exc:
            self.emit(ref, type_, {"code": exc.code, "detail": exc.detail}, ok=False, author=author)
            raise

    def _changed(self, twin_id: str) -> None:
        try:
            self.history.maybe_snapshot(twin_id)
        except Exception:  # history must not fail the change that already committed
            log.exception("could not snapshot twin %s", twin_id)

    # -- resolving ---------------------------------------------------------------------------

    def resolve(self, key: str) -> TwinRef:
        """A twin by id, entity IRI (or CURIE), point UUID / time-series id, or unique label."""
        key = key.strip()
        ref = self.store.ref(key) if key else None
        if ref is not None:
            return ref
        twin_id = self.store.find(iri=expand_curie(key)) if key else None
        if twin_id is None and key:
            point = self.points.resolve(key)
            uuid = point.uuid if point is not None else timeseries_uuid(key)
            twin_id = self.store.find(point=uuid)
        if twin_id is None and key:
            ids = self.store.ids_for_iris(self.entities.labelled(key))
            if len(ids) > 1:
                raise ConflictError(
                    f"The label {key!r} names {len(ids)} twins; use a twin id or IRI",
                    code="ambiguous_twin",
                    twins=sorted(ids.values()),
                )
            twin_id = next(iter(ids.values()), None)
        ref = self.store.ref(twin_id) if twin_id else None
        if ref is None:
            raise NotFoundError(
                f"No twin with id, IRI, point UUID or label {key!r}", code="twin_not_found"
            )
        return ref

    def get(self, key: str, *, as_of: datetime | None = None) -> TwinState:
        ref = self.resolve(key)
        if as_of is not None:
            return self.history.as_of(ref, as_of)
        state = self.store.state(ref.id)
        if state is None:
            raise NotFoundError(f"Twin {ref.id!r} was deleted", code="twin_not_found")
        return state

    def find(
        self,
        *,
        labels: str | None = None,
        selector: str | None = None,
        site: str | None = None,
        online: bool | None = None,
        kind: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[TwinState]:
        from app.events.selectors import resolve_selector
        from app.twins.model import LabelSelector

        iris = resolve_selector(self.sparql, selector) if selector else None
        ids = self.store.select_ids(
            labels=LabelSelector.parse(labels) if labels else None,
            iris=iris,
            site=site,
            online=online,
            kind=kind,
            after=after,
            limit=limit,
        )
        return self.store.states(ids)

    # -- creating and changing twins ---------------------------------------------------------

    def create(
        self,
        *,
        entity: str,
        twin_id: str | None = None,
        labels: Mapping[str, Any] | None = None,
        site: str | None = None,
        schemas: Mapping[str, Any] | None = None,
        actions: Mapping[str, Any] | None = None,
        td: Mapping[str, Any] | None = None,
        author: str | None = None,
    ) -> tuple[TwinState, str]:
        """Create the twin of a graph entity; returns it and its device secret (shown once)."""
        iri = expand_iri(entity)
        info = self.entities.describe([iri])[iri]
        if not info.exists:
            raise NotFoundError(f"<{iri}> is not in the graph", code="entity_not_found")
        if info.kind is None:
            raise InvalidInputError(
                f"<{iri}> is neither equipment nor a point (brick:Equipment, brick:Point); "
                "only those can have twins",
                code="not_a_twin_entity",
            )
        checked_labels = check_labels(labels or {})
        checked_schemas = self._check_schemas(schemas or {})
        checked_actions = check_actions(actions or {})
        secret = credentials.new_secret()
        candidates = [check_twin_id(twin_id)] if twin_id else self._id_candidates(info)
        with self.changing("twin create") as box:
            for i, candidate in enumerate(candidates):
                try:
                    self.store.insert(
                        box.conn,
                        twin_id=candidate,
                        iri=iri,
                        kind=info.kind,
                        point=info.point,
                        graph=info.graph,
                        site=site or info.site,
                        site_set=site is not None,
                        classes=sorted(info.classes),
                        labels=checked_labels,
                        writable=info.writable,
                        schemas=checked_schemas,
                        actions=checked_actions,
                        secret_hash=credentials.digest(secret),
                        td=td,
                    )
                    break
                except ConflictError as exc:
                    if exc.code != "twin_id_taken" or twin_id or i == len(candidates) - 1:
                        raise
            remember_secret(box.conn, candidate, secret)  # the device's broker login
            ref = self.store.ref(candidate, box.conn)
            assert ref is not None
            box.add(
                ref.event(
                    "twin.registered",
                    {"via": "td" if td else "api", "kind": ref.kind},
                    author=author,
                )
            )
        self._point_twins = None
        self.history.maybe_snapshot(ref.id, force=True)
        return self.get(ref.id), secret

    def _id_candidates(self, info: EntityInfo) -> list[str]:
        base = slug(info.label) if info.label else slug(_local_name(info.iri))
        if base in RESERVED_IDS:
            base = f"{base}-twin"
        options = [base] + [f"{base}-{n}" for n in range(2, 50)]
        taken = self.store.taken_ids(options)
        free = [o for o in options if o not in taken]
        return free[:3] or [f"{base}-{int(time.time() * 1000) % 10**9}"]

    def _check_schemas(self, schemas: Mapping[str, Any]) -> dict[str, Any]:
        return {check_property_name(n): check_schema(n, s) for n, s in schemas.items()}

    def update(
        self,
        key: str,
        *,
        labels: Mapping[str, Any] | None = None,
        site: str | None = None,
        schemas: Mapping[str, Any] | None = None,
        actions: Mapping[str, Any] | None = None,
        author: str | None = None,
    ) -> TwinState:
        """Replace the given fields (labels, site, property schemas, command actions)."""
        ref = self.resolve(key)
        sets: list[str] = []
        params: list[Any] = []
        data: dict[str, Any] = {}
        with self.failing_as(ref, "twin.updated", author=author):
            if labels is not None:
                data["labels"] = check_labels(labels)
                sets.append("labels = %s")
                params.append(Jsonb(data["labels"]))
            if site is not None:
                data["site"] = site
                sets.append("site = %s, site_set = true")
                params.append(site)
            if schemas is not None:
                data["schemas"] = self._check_schemas(schemas)
                sets.append("schemas = %s")
                params.append(Jsonb(data["schemas"]))
            if actions is not None:
                data["actions"] = check_actions(actions)
                sets.append("actions = %s")
                params.append(Jsonb(data["actions"]))
            if not sets:
                raise InvalidInputError(
                    "Nothing to change: give labels, site, schemas or actions", code="no_change"
                )
        with self.changing("twin update") as box:
            box.conn.execute(
                f"UPDATE twins SET {', '.join(sets)} WHERE id = %s",  # noqa: S608
                [*params, ref.id],
            )
            updated = self.store.ref(ref.id, box.conn)  # the site may have changed
            if updated is None:
                raise NotFoundError(f"Twin {ref.id!r} was deleted", code="twin_not_found")
            box.add(updated.event("twin.updated", data, author=author))
        self._changed(ref.id)
        return self.get(ref.id)

    def delete(self, key: str, *, author: str | None = None) -> None:
        ref = self.resolve(key)
        with self.changing("twin delete") as box:
            if box.conn.execute("DELETE FROM twins WHERE id = %s", (ref.id,)).rowcount == 0:
                raise NotFoundError(f"Twin {ref.id!r} was deleted", code="twin_not_found")
            box.add(ref.event("twin.deleted", {}, author=author))
        self._point_twins = None

    def rotate_secret(self, key: str, *, author: str | None = None) -> str:
        """A new device secret (the old one stops working at once)."""
        ref = self.resolve(key)
        secret = credentials.new_secret()
        with self.changing("twin update") as box:
            self.store.set_secret(ref.id, credentials.digest(secret), box.conn)
            remember_secret(box.conn, ref.id, secret)  # the device's broker login
            box.add(ref.event("twin.updated", {"credential": "rotated"}, author=author))
        return secret

    def authenticate_device(self, secret: str) -> str | None:
        """The twin id a device secret belongs to, or None."""
        if not secret.startswith(credentials.SECRET_PREFIX):
            return None
        return self.store.by_secret(credentials.digest(secret))

    def device_keys(self, ids: Sequence[str]) -> dict[str, bytes]:
        """MQTT signing keys of twins (see ``app.twins.credentials``)."""
        return self.store.keys(ids)

    # -- Thing Descriptions ------------------------------------------------------------------

    def thing_description(self, key: str, *, base: str, mqtt_url: str | None) -> dict[str, Any]:
        """The twin as a W3C WoT Thing Description (see ``app.twins.td``)."""
        from app.domain.iris import BRICK, REC
        from app.twins import td

        state = self.get(key)
        info = self.entities.describe([state.iri])[state.iri]
        points = self.entities.points_of(state.iri) if state.kind == "equipment" else []
        types = self.entities.most_specific(c for c in info.classes if c.startswith((BRICK, REC)))
        return td.render(
            state, types=types, title=info.label, points=points, base=base, mqtt_url=mqtt_url
        )

    def register(self, document: Any, *, author: str | None = None) -> tuple[TwinState, str]:
        """Create a twin from a Thing Description a device posts; returns its secret."""
        from app.twins import td

        reg = td.parse(document)
        return self.create(
            entity=reg.entity,
            twin_id=reg.twin_id,
            labels=reg.labels,
            schemas=reg.schemas,
            actions=reg.actions,
            td=reg.td,
            author=author,
        )

    def inbox(self, twin_id: str, *, desired_version: int = 0, after: int = 0) -> dict[str, Any]:
        """What an HTTP device has not had: the desired state when newer than the
        ``desired_version`` it holds, and commands after ``after`` not yet acknowledged
        (both then count as delivered). Empty when there is nothing."""
        out: dict[str, Any] = {}
        version, props = self.desired_for_delivery(twin_id, full=True)
        if version > desired_version:
            out["desired"] = {"version": version, "full": True, "props": props}
            self.mark_desired_delivered(twin_id, version)
        pending = self.commands.pending(twin_id, after=after, resend=True)
        if pending:
            out["commands"] = [
                {
                    "id": c.id,
                    "name": c.name,
                    "input": c.input,
                    "expires": c.expires.isoformat(),
                }
                for c in pending
            ]
            self.commands.mark_delivered(twin_id, [c.id for c in pending])
        return out

    # -- desired -----------------------------------------------------------------------------

    def set_desired(
        self, key: str, props: Mapping[str, Any], *, author: str | None = None
    ) -> TwinState:
        """Merge ``props`` into the desired state (a null value removes the property)."""
        ref = self.resolve(key)
        with self.failing_as(ref, "desired.set", author=author):
            if not props:
                raise InvalidInputError("No properties given", code="no_properties")
            for name in props:
                check_property_name(name)
            with self.changing("desired write") as box:
                conn = box.conn
                version, now = _lock_checked(conn, ref.id, "desired_version", props)
                version += 1
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO twin_properties (twin, name, desired, desired_version, "
                        "desired_time, desired_by) VALUES (%s, %s, %s, %s, %s, %s) "
                        "ON CONFLICT (twin, name) DO UPDATE SET desired = EXCLUDED.desired, "
                        "desired_version = EXCLUDED.desired_version, "
                        "desired_time = EXCLUDED.desired_time, "
                        "desired_by = EXCLUDED.desired_by",
                        [
                            (
                                ref.id,
                                name,
                                Jsonb(value) if value is not None else None,
                                version,
                                now,
                                author,
                            )
                            for name, value in props.items()
                        ],
                    )
                conn.execute(
                    "UPDATE twins SET desired_version = %s WHERE id = %s", (version, ref.id)
                )
                newly = self._mark_synced(conn, ref.id)
                state = self.store.state(ref.id, conn)
                assert state is not None
                box.add(
                    ref.event(
                        "desired.set",
                        {"version": version, "props": dict(props), "time": now.isoformat()},
                        author=author,
                    )
                )
                box.add(self._synced_event(ref, state, newly))
        self._changed(ref.id)
        return state

    def desired_for_delivery(self, twin_id: str, *, full: bool) -> tuple[int, dict[str, Any]]:
        """(desired version, properties to send): everything desired when ``full``, else
        what changed since the last delivery (removals as None)."""
        found = self.desired_for_delivery_many([twin_id], full={twin_id} if full else set())
        return found.get(twin_id, (0, {}))

    def desired_for_delivery_many(
        self, ids: Sequence[str], *, full: set[str]
    ) -> dict[str, tuple[int, dict[str, Any]]]:
        """``desired_for_delivery`` for many twins in two queries."""
        with translate_errors("desired read"), self.pool.connection() as conn:
            twins = conn.execute(
                "SELECT id, desired_version, delivered_version FROM twins WHERE id = ANY(%s)",
                (list(ids),),
            ).fetchall()
            rows = conn.execute(
                "SELECT p.twin, p.name, p.desired FROM twin_properties p JOIN twins t "
                "ON t.id = p.twin WHERE p.twin = ANY(%s) AND CASE WHEN p.twin = ANY(%s) "
                "THEN p.desired IS NOT NULL ELSE p.desired_version > t.delivered_version END",
                (list(ids), sorted(full)),
            ).fetchall()
        out: dict[str, tuple[int, dict[str, Any]]] = {t: (v, {}) for t, v, _d in twins}
        for twin, name, value in rows:
            out[twin][1][name] = value
        return out

    def mark_desired_delivered(self, twin_id: str, version: int) -> None:
        self.mark_desired_delivered_many({twin_id: version})

    def mark_desired_delivered_many(self, versions: Mapping[str, int]) -> None:
        if not versions:
            return
        ids, numbers = list(versions), [versions[t] for t in versions]
        with self.changing("desired delivery") as box:
            rows = box.conn.execute(
                "UPDATE twins t SET delivered_version = v.version FROM "
                "unnest(%s::text[], %s::bigint[]) AS v(id, version) "
                "WHERE t.id = v.id AND t.delivered_version < v.version RETURNING t.id",
                (ids, numbers),
            ).fetchall()
            refs = self.store.refs([r[0] for r in rows], box.conn)
            for twin_id, ref in sorted(refs.items()):
                box.add(ref.event("desired.delivered", {"version": versions[twin_id]}))

    def acknowledge_desired(
        self, twin_id: str, version: int, *, error: str | None = None
    ) -> TwinState:
        """The device confirms (or, with ``error``, refuses) desired ``version``."""
        ref = self.resolve(twin_id)
        with self.failing_as(ref, "desired.acknowledged"):
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise InvalidInputError(
                    "desired version must be a positive integer", code="bad_version"
                )
            with self.changing("desired ack") as box:
                row = box.conn.execute(
                    "UPDATE twins SET acked_version = %s, ack_error = %s, "
                    "delivered_version = GREATEST(delivered_version, %s) "
                    "WHERE id = %s AND desired_version >= %s RETURNING id",
                    (version, error, version, ref.id, version),
                ).fetchone()
                if row is None:
                    raise ConflictError(
                        f"Twin {ref.id!r} has no desired version {version}",
                        code="unknown_desired_version",
                    )
                data = {"version": version, "error": error}
                box.add(ref.event("desired.acknowledged", data, ok=not error))
        self._changed(ref.id)
        return self.get(ref.id)

    # -- reported ----------------------------------------------------------------------------

    def report(
        self,
        twin_id: str,
        props: Mapping[str, Any],
        *,
        source: str,
        desired_version: int | None = None,
        when: datetime | None = None,
        only_newer: bool = False,
    ) -> TwinState | None:
        """Merge the device's reported ``props``; ``desired_version`` also acknowledges that
        desired version. With ``only_newer`` (telemetry) a property older than what is
        stored is ignored; returns None when nothing changed."""
        ref = self.resolve(twin_id)
        with self.failing_as(ref, "reported"):
            if not props:
                raise InvalidInputError("No properties reported", code="no_properties")
            for name in props:
                check_property_name(name)
            with self.changing("reported write") as box:
                conn = box.conn
                version, now = _lock_checked(conn, ref.id, "reported_version", props)
                stamp = when or now
                if only_newer:
                    props = self._newer_only(conn, ref.id, props, stamp)
                    if not props:
                        return None
                version += 1
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO twin_properties (twin, name, reported, reported_version, "
                        "reported_time) VALUES (%s, %s, %s, %s, %s) "
                        "ON CONFLICT (twin, name) DO UPDATE SET reported = EXCLUDED.reported, "
                        "reported_version = EXCLUDED.reported_version, "
                        "reported_time = EXCLUDED.reported_time",
                        [
                            (ref.id, n, Jsonb(v) if v is not None else None, version, stamp)
                            for n, v in props.items()
                        ],
                    )
                conn.execute(
                    "UPDATE twins SET reported_version = %s WHERE id = %s", (version, ref.id)
                )
                if desired_version is not None:
                    conn.execute(
                        "UPDATE twins SET acked_version = LEAST(%s, desired_version), "
                        "ack_error = NULL, delivered_version = GREATEST(delivered_version, "
                        "LEAST(%s, desired_version)) WHERE id = %s AND acked_version < %s",
                        (desired_version, desired_version, ref.id, desired_version),
                    )
                newly = self._mark_synced(conn, ref.id)
                state = self.store.state(ref.id, conn)
                assert state is not None
                data = {
                    "version": version,
                    "props": dict(props),
                    "time": stamp.isoformat(),
                    "source": source,
                }
                box.add(ref.event("reported", data))
                box.add(self._synced_event(ref, state, newly))
        self._changed(ref.id)
        return state

    @staticmethod
    def _newer_only(
        conn: Conn, twin_id: str, props: Mapping[str, Any], stamp: datetime
    ) -> dict[str, Any]:
        rows = conn.execute(
            "SELECT name, reported_time FROM twin_properties WHERE twin = %s AND name = ANY(%s)",
            (twin_id, list(props)),
        ).fetchall()
        stored = {n: t for n, t in rows}
        return {n: v for n, v in props.items() if stored.get(n) is None or stored[n] < stamp}

    @staticmethod
    def _mark_synced(conn: Conn, twin_id: str) -> list[str]:
        """Properties that just came in sync (each desired version is announced once)."""
        rows = conn.execute(
            "SELECT name, desired, reported FROM twin_properties WHERE twin = %s "
            "AND desired IS NOT NULL AND reported IS NOT NULL AND synced_version < desired_version",
            (twin_id,),
        ).fetchall()
        newly = sorted(name for name, d, r in rows if json_equal(d, r))
        if newly:
            conn.execute(
                "UPDATE twin_properties SET synced_version = desired_version "
                "WHERE twin = %s AND name = ANY(%s)",
                (twin_id, newly),
            )
        return newly

    @staticmethod
    def _synced_event(ref: TwinRef, state: TwinState, newly: list[str]) -> Event | None:
        if not newly:
            return None
        return ref.event(
            "synced",
            {"props": newly, "version": state.desired_version, "twinSynced": state.synced},
        )

    # -- device status -----------------------------------------------------------------------

    def heartbeat(
        self, twin_id: str, *, transport: str, status: str = "online", boot: bool = False
    ) -> bool:
        """Record that the device is alive (or, ``status='offline'``, leaving); announces
        ``device.online`` on the transition (and on every boot: a device that restarted
        wants its configuration again) and ``device.offline``. Returns online."""
        if status not in ("online", "offline"):
            raise InvalidInputError("status must be 'online' or 'offline'", code="bad_heartbeat")
        online = status == "online"
        with self.changing("heartbeat") as box:
            row = box.conn.execute(
                "UPDATE twins t SET online = %s, transport = %s, "
                "last_heartbeat = CASE WHEN %s THEN clock_timestamp() ELSE t.last_heartbeat END "
                "FROM (SELECT id, online FROM twins WHERE id = %s FOR UPDATE) old "
                "WHERE t.id = old.id RETURNING old.online, t.last_heartbeat",
                (online, transport, online, twin_id),
            ).fetchone()
            if row is None:
                raise NotFoundError(f"No twin {twin_id!r}", code="twin_not_found")
            was_online, beat = row
            change: tuple[str, dict[str, Any]] | None = None
            if online and (not was_online or boot):
                data = {"transport": transport, "boot": boot, "time": beat.isoformat()}
                change = ("device.online", data)
            elif not online and was_online:
                change = ("device.offline", {"transport": transport, "reason": "device"})
            if change is not None:
                ref = self.store.ref(twin_id, box.conn)
                assert ref is not None
                box.add(ref.event(*change))
        if box.published:
            self._changed(twin_id)
        return online

    def sweep_offline(self) -> list[str]:
        """Mark twins offline whose last heartbeat is older than the timeout."""
        data = {"reason": "heartbeat timeout", "timeoutS": self.settings.heartbeat_timeout_s}
        with self.changing("offline sweep") as box:
            rows = box.conn.execute(
                "UPDATE twins SET online = false WHERE online AND "
                "(last_heartbeat IS NULL OR last_heartbeat < clock_timestamp() - %s) RETURNING id",
                (timedelta(seconds=self.settings.heartbeat_timeout_s),),
            ).fetchall()
            ids = [r[0] for r in rows]
            refs = self.store.refs(ids, box.conn)
            for twin_id in sorted(refs):
                box.add(refs[twin_id].event("device.offline", data))
        for twin_id in sorted(refs):
            self._changed(twin_id)
        return ids

    # -- writable points ---------------------------------------------------------------------

    def point_value(self, key: str) -> PointValue:
        ref = self.points.resolve(key)
        if ref is None:
            raise NotFoundError(f"No point {key!r} in the graph", code="unknown_point")
        latest = None
        if self.telemetry is not None:
            latest = self.telemetry.latest(points=[ref.uuid]).get(ref.uuid)
        twin_id = self.store.find(iri=ref.point)
        info = self.entities.describe([ref.point])[ref.point]
        return PointValue(
            point=ref.uuid,
            iri=ref.point,
            writable=info.writable,
            latest=latest,
            twin=self.get(twin_id) if twin_id else None,
        )

    def set_point_value(self, key: str, value: Any, *, author: str | None = None) -> TwinState:
        """Set a writable point: the value becomes the desired value of the point's twin
        (created on first use); the point's next matching reading confirms it."""
        ref = self.points.resolve(key)
        if ref is None:
            raise NotFoundError(f"No point {key!r} in the graph", code="unknown_point")
        if isinstance(value, dict | list):
            raise InvalidInputError(
                "A point value is a number, boolean, string or null", code="bad_value"
            )
        info = self.entities.describe([ref.point])[ref.point]
        if not info.writable:
            raise ConflictError(
                f"<{ref.point}> is not writable: only Brick setpoints, commands and "
                "parameters (and their subclasses) accept values",
                code="point_not_writable",
            )
        twin_id = self.store.find(iri=ref.point)
        if twin_id is None:
            try:
                state, _secret = self.create(entity=ref.point, author=author)
                twin_id = state.id
            except ConflictError:  # created concurrently
                twin_id = self.store.find(iri=ref.point)
        assert twin_id is not None
        return self.set_desired(twin_id, {POINT_VALUE: value}, author=author)

    def on_readings(self, readings: Sequence[Reading]) -> None:
        """Committed telemetry (any process): readings of point twins are their reported
        value, which confirms a desired value when it matches."""
        twins = self._point_twin_map()
        newest: dict[str, Reading] = {}
        for r in readings:
            twin_id = twins.get(r.point)
            if twin_id is not None and (twin_id not in newest or newest[twin_id].time < r.time):
                newest[twin_id] = r
        for twin_id, r in newest.items():
            try:
                self.report(
                    twin_id,
                    {POINT_VALUE: r.value},
                    source="telemetry",
                    when=r.time,
                    only_newer=True,
                )
            except AppError as exc:
                log.warning("reading of point twin %s not applied: %s", twin_id, exc.detail)

    def _point_twin_map(self) -> dict[UUID, str]:
        now = time.monotonic()
        with self._lock:
            if self._point_twins is None or now - self._point_twins_at > 5.0:
                self._point_twins = self.store.point_twins()
                self._point_twins_at = now
            return self._point_twins

    def forget_caches(self) -> None:
        self._point_twins = None

    # -- graph changes -----------------------------------------------------------------------

    def refresh_entities(self) -> int:
        """Re-read classes, graph and site of every twin after a model change."""
        twins = self.store.iris()
        if not twins:
            return 0
        by_iri = {iri: (tid, keep) for tid, (iri, keep) in twins.items()}
        infos = self.entities.describe(sorted(by_iri))
        for iri, info in infos.items():
            tid, keep = by_iri[iri]
            self.store.set_graph_facts(
                tid,
                graph=info.graph,
                site=info.site,
                classes=sorted(info.classes),
                writable=info.writable,
                keep_site=keep,
            )
        return len(infos)


def check_actions(actions: Mapping[str, Any]) -> dict[str, Any]:
    """Command definitions: name -> {"input"?: JSON Schema, "output"?, "title"?, ...}."""
    out: dict[str, Any] = {}
    for name, spec in actions.items():
        if not COMMAND_NAME.match(name):
            raise InvalidInputError(f"Action name {name!r} is not valid", code="bad_action")
        if not isinstance(spec, dict):
            raise InvalidInputError(
                f'Action {name!r} must be an object like {{"input": <JSON Schema>}}',
                code="bad_action",
            )
        for part in ("input", "output"):
            if part in spec:
                check_schema(f"action {name} {part}", spec[part])
        out[name] = spec
    return out


def _local_name(iri: str) -> str:
    for sep in ("#", "/", ":"):
        if sep in iri:
            iri = iri.rsplit(sep, 1)[1] or iri
    return iri
