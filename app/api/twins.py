"""``/twins``, ``/jobs`` and ``/points/{key}/value``: live twins for users (bearer tokens).

Reads need the read scope; desired values, commands, bulk jobs and twin changes need
write. A twin is named by its id, its entity's IRI (or CURIE), a point's UUID or
time-series id, or a unique label. Devices use ``/devices`` (``app.api.devices``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from app.api.deps import PlatformDep, ReaderDep, WriterDep
from app.api.revisions import parse_as_of
from app.errors import InvalidInputError, UnavailableError
from app.platform import Platform
from app.twins.jobs import Selector
from app.twins.service import TwinService

router = APIRouter(tags=["twins"])


def twins_of(platform: Platform) -> TwinService:
    if platform.twins is None:
        raise UnavailableError("Twins need the database (telemetry is off)", code="no_twins")
    return platform.twins


def _base(request: Request) -> str:
    return str(request.base_url)


class TwinCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    entity: str = Field(description="IRI (or CURIE) of the equipment or point in the graph")
    id: str | None = Field(default=None, description="twin id; derived from the label if unset")
    labels: dict[str, Any] = Field(default_factory=dict)
    site: str | None = None
    schemas: dict[str, Any] = Field(default_factory=dict, description="property -> JSON Schema")
    actions: dict[str, Any] = Field(default_factory=dict, description="command -> {input: schema}")


class TwinPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: dict[str, Any] | None = None
    site: str | None = None
    schemas: dict[str, Any] | None = None
    actions: dict[str, Any] | None = None


class CommandRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    input: Any = None
    ttl: float | None = Field(default=None, description="seconds until it expires undelivered")
    idempotency_key: str | None = Field(default=None, alias="idempotencyKey")


class SelectorModel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: str | None = Field(default=None, description="label selector: type=sensor,level=1")
    sparql: str | None = Field(default=None, description="SELECT whose first variable binds twins")


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    selector: SelectorModel
    desired: dict[str, Any] | None = None
    command: CommandRequest | None = None


class PointWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: float | int | bool | str | None


# -- listing and creating ------------------------------------------------------------------


@router.get("/twins", summary="Twins, filtered by labels, SPARQL selector, site, status")
def list_twins(
    platform: PlatformDep,
    _caller: ReaderDep,
    labels: str | None = None,
    selector: str | None = None,
    site: str | None = None,
    online: bool | None = None,
    kind: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    found = twins_of(platform).find(
        labels=labels,
        selector=selector,
        site=site,
        online=online,
        kind=kind,
        after=after,
        limit=limit,
    )
    return JSONResponse(
        {"twins": [t.as_dict() for t in found], "next": found[-1].id if found else None}
    )


@router.post("/twins", status_code=201, summary="Create the twin of a graph entity")
def create_twin(body: TwinCreate, platform: PlatformDep, principal: WriterDep) -> JSONResponse:
    state, secret = twins_of(platform).create(
        entity=body.entity,
        twin_id=body.id,
        labels=body.labels,
        site=body.site,
        schemas=body.schemas,
        actions=body.actions,
        author=principal.label,
    )
    return JSONResponse(
        {"twin": state.as_dict(), "deviceSecret": secret},
        status_code=201,
        headers={"Location": f"/twins/{state.id}"},
    )


# -- jobs ----------------------------------------------------------------------------------


@router.post("/jobs", status_code=201, summary="Bulk: desired properties or a command")
def create_job(body: JobRequest, platform: PlatformDep, principal: WriterDep) -> JSONResponse:
    twins = twins_of(platform)
    if (body.desired is None) == (body.command is None):
        raise InvalidInputError("A job sets either desired or command", code="bad_job")
    selector = Selector(labels=body.selector.labels, sparql=body.selector.sparql)
    if body.desired is not None:
        job = twins.jobs.set_desired(selector, body.desired, author=principal.label)
    else:
        assert body.command is not None
        job = twins.jobs.send_command(
            selector,
            name=body.command.name,
            input=body.command.input,
            ttl_s=body.command.ttl,
            idempotency_key=body.command.idempotency_key,
            author=principal.label,
        )
    return JSONResponse(job.as_dict(), status_code=201, headers={"Location": f"/jobs/{job.id}"})


@router.get("/jobs/{job_id}", summary="A bulk job with its per-twin results")
def get_job(job_id: int, platform: PlatformDep, _caller: ReaderDep) -> JSONResponse:
    return JSONResponse(twins_of(platform).jobs.get(job_id).as_dict())


# -- writable points -----------------------------------------------------------------------


@router.get("/points/{key:path}/value", summary="A point's last-known value (and its twin)")
def point_value(key: str, platform: PlatformDep, _caller: ReaderDep) -> JSONResponse:
    return JSONResponse(twins_of(platform).point_value(key).as_dict())


@router.put("/points/{key:path}/value", summary="Set a writable point (setpoint, command)")
def set_point_value(
    key: str, body: PointWrite, platform: PlatformDep, principal: WriterDep
) -> JSONResponse:
    twins = twins_of(platform)
    twins.set_point_value(key, body.value, author=principal.label)
    return JSONResponse(twins.point_value(key).as_dict(), status_code=202)


# -- one twin (specific paths first: twin keys may contain slashes) ------------------------


@router.get("/twins/{key:path}/td", summary="The twin as a W3C WoT Thing Description")
def thing_description(
    key: str, request: Request, platform: PlatformDep, _caller: ReaderDep
) -> JSONResponse:
    td = twins_of(platform).thing_description(
        key, base=_base(request), mqtt_url=platform.settings.mqtt_url
    )
    return JSONResponse(td, media_type="application/td+json")


@router.get("/twins/{key:path}/history", summary="The twin's state snapshots (delta-sampled)")
def twin_history(
    key: str,
    platform: PlatformDep,
    _caller: ReaderDep,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    twins = twins_of(platform)
    ref = twins.resolve(key)
    snaps = twins.history.snapshots(ref.id, since=since, until=until, limit=limit)
    return JSONResponse(
        {
            "twin": ref.id,
            "deltaS": twins.history.delta.total_seconds(),
            "snapshots": [{"time": t.isoformat(), "state": s.as_dict()} for t, s in snaps],
        }
    )


@router.patch("/twins/{key:path}/desired", summary="Merge desired properties (null removes)")
def patch_desired(
    key: str,
    platform: PlatformDep,
    principal: WriterDep,
    body: Annotated[dict[str, Any], Body(description="{property: value}")],
) -> JSONResponse:
    state = twins_of(platform).set_desired(key, body, author=principal.label)
    return JSONResponse(state.as_dict())


@router.post("/twins/{key:path}/credentials", summary="Rotate the device secret")
def rotate_secret(key: str, platform: PlatformDep, principal: WriterDep) -> JSONResponse:
    twins = twins_of(platform)
    secret = twins.rotate_secret(key, author=principal.label)
    return JSONResponse({"twin": twins.resolve(key).id, "deviceSecret": secret})


@router.get("/twins/{key:path}/commands/{command_id:int}", summary="One command")
def get_command(
    key: str, command_id: int, platform: PlatformDep, _caller: ReaderDep
) -> JSONResponse:
    return JSONResponse(twins_of(platform).commands.get(key, command_id).as_dict())


@router.get("/twins/{key:path}/commands", summary="The twin's commands, oldest first")
def list_commands(
    key: str,
    platform: PlatformDep,
    _caller: ReaderDep,
    state: Annotated[list[str], Query()] = [],  # noqa: B006 - FastAPI reads, never mutates
    after: int = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JSONResponse:
    found = twins_of(platform).commands.find(key, states=state, after=after, limit=limit)
    return JSONResponse({"commands": [c.as_dict() for c in found]})


@router.post("/twins/{key:path}/commands", status_code=201, summary="Queue a command")
def send_command(
    key: str,
    body: CommandRequest,
    platform: PlatformDep,
    principal: WriterDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """201 with the new command; 200 with the existing one when ``Idempotency-Key`` (header
    or ``idempotencyKey``) names a command already queued with the same request."""
    if idempotency_key and body.idempotency_key and idempotency_key != body.idempotency_key:
        raise InvalidInputError(
            "The Idempotency-Key header and idempotencyKey differ", code="bad_idempotency_key"
        )
    twins = twins_of(platform)
    cmd, created = twins.commands.send(
        key,
        name=body.name,
        input=body.input,
        ttl_s=body.ttl,
        idempotency_key=idempotency_key or body.idempotency_key,
        author=principal.label,
    )
    return JSONResponse(
        cmd.as_dict(),
        status_code=201 if created else 200,
        headers={"Location": f"/twins/{cmd.twin}/commands/{cmd.id}"},
    )


@router.get("/twins/{key:path}", summary="A twin's state (asOf: as it was at a time)")
def get_twin(
    key: str,
    platform: PlatformDep,
    _caller: ReaderDep,
    as_of: Annotated[str | None, Query(alias="asOf")] = None,
) -> JSONResponse:
    when = parse_as_of(as_of) if as_of else None
    return JSONResponse(twins_of(platform).get(key, as_of=when).as_dict())


@router.patch("/twins/{key:path}", summary="Change labels, site, property schemas or actions")
def patch_twin(
    key: str, body: TwinPatch, platform: PlatformDep, principal: WriterDep
) -> JSONResponse:
    state = twins_of(platform).update(
        key,
        labels=body.labels,
        site=body.site,
        schemas=body.schemas,
        actions=body.actions,
        author=principal.label,
    )
    return JSONResponse(state.as_dict())


@router.delete("/twins/{key:path}", status_code=204, summary="Delete a twin (not its entity)")
def delete_twin(key: str, platform: PlatformDep, principal: WriterDep) -> Response:
    twins_of(platform).delete(key, author=principal.label)
    return Response(status_code=204)
