"""Twin values: property names, sync status, twin state, commands, jobs, label selectors.

Plain data and pure functions, shared by the service, the device channel and the API.
A twin mirrors one graph entity (equipment or point): *desired* properties written by
users, *reported* properties written by the device, each with a value (any JSON), a
version and a time. A property is in sync when both agree; in between it is pending
(not yet sent), delivered (sent to the device), acknowledged (the device confirmed that
desired version) or failed (the device refused it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from app.errors import InvalidInputError

#: ``<schema>.v<version>.<Name>``: ``sensor.v1.SampleRate``, ``acme.hvac.v2.Mode``.
PROPERTY_NAME = re.compile(
    r"^[A-Za-z][A-Za-z0-9_-]*(?:\.[A-Za-z][A-Za-z0-9_-]*)*\.v[0-9]+\.[A-Za-z][A-Za-z0-9_]*$"
)
#: Twin (device) ids are one MQTT topic level and one URL path segment.
TWIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
#: Ids that would collide with other topics or routes (``twingraph/+/points/+``).
RESERVED_IDS = frozenset({"points", "telemetry", "errors", "register"})
#: Command names: a plain identifier, optionally schema-qualified like properties.
COMMAND_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,127}$")
#: The one property of a point twin: the value the point should take / has.
POINT_VALUE = "point.v1.Value"
MAX_VALUE_BYTES = 64 * 1024
LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,62}$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9_./:-]{0,128}$")


class SyncStatus(StrEnum):
    SYNCED = "synced"
    PENDING = "pending"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    FAILED = "failed"
    #: Reported only: nothing is desired, so there is nothing to reconcile.
    REPORTED = "reported"


class CommandState(StrEnum):
    QUEUED = "queued"
    DELIVERED = "delivered"
    ACKNOWLEDGED = "acknowledged"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"

    @property
    def final(self) -> bool:
        return self in (CommandState.SUCCEEDED, CommandState.FAILED, CommandState.EXPIRED)


#: Commands still waiting for the device (sent again when it reconnects).
UNACKNOWLEDGED = (CommandState.QUEUED.value, CommandState.DELIVERED.value)


@dataclass(frozen=True, slots=True)
class PropertyValue:
    value: Any
    version: int
    time: datetime

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "version": self.version, "time": self.time.isoformat()}


@dataclass(frozen=True, slots=True)
class PropertyState:
    name: str
    desired: PropertyValue | None
    reported: PropertyValue | None
    status: SyncStatus


@dataclass(frozen=True, slots=True)
class TwinState:
    id: str
    iri: str
    #: ``equipment`` or ``point``.
    kind: str
    point: UUID | None
    graph: str | None
    site: str | None
    labels: Mapping[str, str]
    #: The entity's classes with their superclasses.
    classes: tuple[str, ...]
    writable: bool
    online: bool
    last_heartbeat: datetime | None
    transport: str | None
    created: datetime
    desired_version: int
    delivered_version: int
    acknowledged_version: int
    ack_error: str | None
    schemas: Mapping[str, Any]
    actions: Mapping[str, Any]
    properties: Mapping[str, PropertyState]
    #: Set when this is the state as of a past time.
    as_of: datetime | None = None

    @property
    def synced(self) -> bool:
        return all(
            p.status in (SyncStatus.SYNCED, SyncStatus.REPORTED) for p in self.properties.values()
        )

    @property
    def desired(self) -> dict[str, Any]:
        return {n: p.desired.value for n, p in self.properties.items() if p.desired is not None}

    @property
    def reported(self) -> dict[str, Any]:
        return {n: p.reported.value for n, p in self.properties.items() if p.reported is not None}

    def as_dict(self) -> dict[str, Any]:
        props = sorted(self.properties.values(), key=lambda p: p.name)
        return {
            "id": self.id,
            "iri": self.iri,
            "kind": self.kind,
            "point": str(self.point) if self.point else None,
            "graph": self.graph,
            "site": self.site,
            "labels": dict(self.labels),
            "classes": list(self.classes),
            "writable": self.writable,
            "online": self.online,
            "lastHeartbeat": self.last_heartbeat.isoformat() if self.last_heartbeat else None,
            "transport": self.transport,
            "created": self.created.isoformat(),
            "desired": {p.name: p.desired.as_dict() for p in props if p.desired is not None},
            "reported": {p.name: p.reported.as_dict() for p in props if p.reported is not None},
            "sync": {
                "status": "synced" if self.synced else "pending",
                "properties": {p.name: p.status.value for p in props},
            },
            "desiredVersion": self.desired_version,
            "deliveredVersion": self.delivered_version,
            "acknowledgedVersion": self.acknowledged_version,
            "ackError": self.ack_error,
            "schemas": dict(self.schemas),
            "actions": dict(self.actions),
            "asOf": self.as_of.isoformat() if self.as_of else None,
        }


@dataclass(frozen=True, slots=True)
class Command:
    id: int
    twin: str
    name: str
    input: Any
    state: CommandState
    idempotency_key: str | None
    created: datetime
    expires: datetime
    delivered: datetime | None = None
    acknowledged: datetime | None = None
    finished: datetime | None = None
    result: Any = None
    error: str | None = None
    author: str | None = None
    job: int | None = None

    def as_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return t.isoformat() if t else None

        return {
            "id": self.id,
            "twin": self.twin,
            "name": self.name,
            "input": self.input,
            "state": self.state.value,
            "idempotencyKey": self.idempotency_key,
            "created": iso(self.created),
            "expires": iso(self.expires),
            "delivered": iso(self.delivered),
            "acknowledged": iso(self.acknowledged),
            "finished": iso(self.finished),
            "result": self.result,
            "error": self.error,
            "author": self.author,
            "job": self.job,
        }


@dataclass(frozen=True, slots=True)
class JobResult:
    #: The selected entity (or twin id) this result is about.
    target: str
    twin: str | None
    ok: bool
    code: str
    detail: str | None = None
    command: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "twin": self.twin,
            "ok": self.ok,
            "code": self.code,
            "detail": self.detail,
            "command": self.command,
        }


@dataclass(frozen=True, slots=True)
class Job:
    id: int
    operation: str
    created: datetime
    author: str | None
    selector: Mapping[str, Any]
    request: Mapping[str, Any]
    total: int
    succeeded: int
    failed: int
    results: tuple[JobResult, ...] = ()

    def as_dict(self, *, results: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "operation": self.operation,
            "created": self.created.isoformat(),
            "author": self.author,
            "selector": dict(self.selector),
            "request": dict(self.request),
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
        }
        if results:
            out["results"] = [r.as_dict() for r in self.results]
        return out


# -- validation ------------------------------------------------------------------------------


def check_property_name(name: str) -> str:
    if not isinstance(name, str) or not PROPERTY_NAME.match(name):
        raise InvalidInputError(
            f"Property name {name!r} is not schema-qualified like 'sensor.v1.SampleRate' "
            "(<schema>.v<version>.<Name>)",
            code="bad_property_name",
        )
    return name


def check_twin_id(twin_id: str) -> str:
    if not TWIN_ID.match(twin_id) or twin_id in RESERVED_IDS:
        raise InvalidInputError(
            f"Twin id {twin_id!r} must be 1-128 characters of letters, digits and _ . : - "
            f"(starting with a letter or digit) and not one of {sorted(RESERVED_IDS)}",
            code="bad_twin_id",
        )
    return twin_id


def check_labels(labels: Mapping[str, Any]) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in labels.items():
        if not isinstance(key, str) or not LABEL_KEY.match(key):
            raise InvalidInputError(f"Label key {key!r} is not valid", code="bad_label")
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise InvalidInputError(
                f"Label {key!r} must have a string value, not {value!r}", code="bad_label"
            )
        if not LABEL_VALUE.match(str(value)):
            raise InvalidInputError(f"Label value {value!r} is not valid", code="bad_label")
        out[key] = str(value)
    return out


def slug(text: str) -> str:
    """A twin id candidate from a label or IRI local name."""
    cleaned = re.sub(r"[^A-Za-z0-9_.:-]+", "-", text.strip()).strip("-._:").lower()
    return cleaned[:100] or "twin"


def json_equal(a: Any, b: Any) -> bool:
    """JSON equality: numbers compare by value (1 == 1.0), booleans are not numbers."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and bool(a == b)


# -- label selectors -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    #: ``=``, ``!=``, ``exists`` or ``!exists``.
    op: str
    value: str | None = None


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """``type=sensor,level=1``; also ``key!=value``, ``key`` (has the label), ``!key``."""

    requirements: tuple[Requirement, ...] = field(default_factory=tuple)

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        reqs: list[Requirement] = []
        for raw in text.split(","):
            part = raw.strip()
            if not part:
                raise InvalidInputError(
                    f"Label selector {text!r} has an empty requirement", code="bad_selector"
                )
            if "!=" in part:
                key, _, value = part.partition("!=")
                reqs.append(Requirement(_key(key, text), "!=", _value(value, text)))
            elif "=" in part:
                key, _, value = part.partition("=")
                value = value.removeprefix("=")  # accept ``==``
                reqs.append(Requirement(_key(key, text), "=", _value(value, text)))
            elif part.startswith("!"):
                reqs.append(Requirement(_key(part[1:], text), "!exists"))
            else:
                reqs.append(Requirement(_key(part, text), "exists"))
        return cls(tuple(reqs))

    def matches(self, labels: Mapping[str, str]) -> bool:
        for r in self.requirements:
            has = r.key in labels
            if r.op == "=" and (not has or labels[r.key] != r.value):
                return False
            if r.op == "!=" and has and labels[r.key] == r.value:
                return False
            if r.op == "exists" and not has:
                return False
            if r.op == "!exists" and has:
                return False
        return True


def _key(key: str, text: str) -> str:
    key = key.strip()
    if not LABEL_KEY.match(key):
        raise InvalidInputError(
            f"Label selector {text!r}: {key!r} is not a label key", code="bad_selector"
        )
    return key


def _value(value: str, text: str) -> str:
    value = value.strip()
    if not LABEL_VALUE.match(value):
        raise InvalidInputError(
            f"Label selector {text!r}: {value!r} is not a label value", code="bad_selector"
        )
    return value
