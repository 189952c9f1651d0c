"""``/devices``: the HTTP device channel, for devices that cannot speak MQTT.

Devices authenticate with their own secret (``Authorization: Bearer tgd_...``), never a
user token, and may only touch their own twin: the twin id in the path must be the one
the secret belongs to (403 ``not_your_twin`` otherwise). Receiving is a long poll:
``GET /devices/{id}/inbox?desiredVersion=N&after=M&wait=25`` answers at once when there
is a newer desired state or a command after ``M``, else when one arrives, else after
``wait`` seconds with nothing. Every call counts as a heartbeat.

``POST /devices/register`` takes a W3C WoT Thing Description and creates the twin and its
device credential; it needs a user token with the write scope (a provisioning token).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.api.deps import PlatformDep, WriterDep
from app.api.twins import twins_of
from app.errors import ForbiddenError, UnauthorizedError
from app.events.model import EventFilter
from app.twins.credentials import SECRET_PREFIX

router = APIRouter(tags=["devices"])
MAX_WAIT_S = 60.0


def _device(request: Request, platform: PlatformDep) -> str:
    """The twin id the request's device secret belongs to."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret.startswith(SECRET_PREFIX):
        raise UnauthorizedError(
            "Device endpoints need the device's secret: 'Authorization: Bearer tgd_...' "
            "(user tokens are not accepted here)",
            code="device_credential_required",
        )
    twin_id = twins_of(platform).authenticate_device(secret)
    if twin_id is None:
        raise UnauthorizedError("The device secret is unknown", code="invalid_device_credential")
    return twin_id


DeviceDep = Annotated[str, Depends(_device)]


def _own(twin_id: str, device: str) -> str:
    if twin_id != device:
        raise ForbiddenError(
            f"This credential belongs to twin {device!r}, not {twin_id!r}",
            code="not_your_twin",
        )
    return twin_id


class Reported(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    props: dict[str, Any]
    desired_version: int | None = Field(default=None, alias="desiredVersion")


class Heartbeat(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str = "online"
    boot: bool = False


class DesiredAck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int
    error: str | None = None


class CommandAck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted: bool = True
    error: str | None = None


class CommandResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ok: bool
    output: Any = None
    error: str | None = None


@router.post("/devices/register", status_code=201, summary="Register a device by its TD")
def register(
    platform: PlatformDep,
    principal: WriterDep,
    td: Annotated[dict[str, Any], Body(description="a W3C WoT Thing Description")],
) -> JSONResponse:
    twins = twins_of(platform)
    state, secret = twins.register(td, author=principal.label)
    return JSONResponse(
        {"twin": state.as_dict(), "deviceSecret": secret},
        status_code=201,
        headers={"Location": f"/twins/{state.id}"},
    )


@router.get("/devices/{twin_id}/desired", summary="The whole desired state (at boot)")
def desired(twin_id: str, platform: PlatformDep, device: DeviceDep) -> JSONResponse:
    twins = twins_of(platform)
    _own(twin_id, device)
    twins.heartbeat(twin_id, transport="http")
    version, props = twins.desired_for_delivery(twin_id, full=True)
    return JSONResponse({"version": version, "props": props})


@router.get("/devices/{twin_id}/inbox", summary="Long poll: newer desired state and commands")
async def inbox(
    twin_id: str,
    platform: PlatformDep,
    device: DeviceDep,
    desired_version: Annotated[int, Query(alias="desiredVersion", ge=0)] = 0,
    after: Annotated[int, Query(ge=0)] = 0,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT_S)] = 0,
) -> JSONResponse:
    twins = twins_of(platform)
    _own(twin_id, device)
    await run_in_threadpool(twins.heartbeat, twin_id, transport="http")
    ref = await run_in_threadpool(twins.resolve, twin_id)
    subscription = None
    if wait > 0 and platform.events is not None:
        subscription = platform.events.subscribe(
            EventFilter.of(types=["desired.set", "command.queued"], twins=[ref.iri], ok=True)
        )
    try:
        deadline = time.monotonic() + wait
        while True:
            found = await run_in_threadpool(
                twins.inbox, twin_id, desired_version=desired_version, after=after
            )
            remaining = deadline - time.monotonic()
            if found or subscription is None or remaining <= 0:
                return JSONResponse(found)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(anext(subscription), timeout=remaining)
    finally:
        if subscription is not None:
            subscription.close()


@router.post("/devices/{twin_id}/heartbeat", summary="I am alive (or leaving)")
def heartbeat(
    twin_id: str, body: Heartbeat, platform: PlatformDep, device: DeviceDep
) -> JSONResponse:
    online = twins_of(platform).heartbeat(
        _own(twin_id, device), transport="http", status=body.status, boot=body.boot
    )
    return JSONResponse({"online": online})


@router.post("/devices/{twin_id}/reported", summary="Report properties")
def reported(
    twin_id: str, body: Reported, platform: PlatformDep, device: DeviceDep
) -> JSONResponse:
    twins = twins_of(platform)
    _own(twin_id, device)
    twins.heartbeat(twin_id, transport="http")
    state = twins.report(twin_id, body.props, source="http", desired_version=body.desired_version)
    assert state is not None
    return JSONResponse(state.as_dict())


@router.post("/devices/{twin_id}/desired/ack", summary="Acknowledge (or refuse) a desired version")
def desired_ack(
    twin_id: str, body: DesiredAck, platform: PlatformDep, device: DeviceDep
) -> JSONResponse:
    twins = twins_of(platform)
    _own(twin_id, device)
    twins.heartbeat(twin_id, transport="http")
    return JSONResponse(
        twins.acknowledge_desired(twin_id, body.version, error=body.error).as_dict()
    )


@router.post("/devices/{twin_id}/commands/{command_id}/ack", summary="Acknowledge a command")
def command_ack(
    twin_id: str, command_id: int, body: CommandAck, platform: PlatformDep, device: DeviceDep
) -> JSONResponse:
    twins = twins_of(platform)
    _own(twin_id, device)
    twins.heartbeat(twin_id, transport="http")
    cmd = twins.commands.acknowledge(twin_id, command_id, accepted=body.accepted, error=body.error)
    return JSONResponse(cmd.as_dict())


@router.post("/devices/{twin_id}/commands/{command_id}/result", summary="A command's result")
def command_result(
    twin_id: str, command_id: int, body: CommandResult, platform: PlatformDep, device: DeviceDep
) -> JSONResponse:
    twins = twins_of(platform)
    _own(twin_id, device)
    twins.heartbeat(twin_id, transport="http")
    cmd = twins.commands.complete(
        twin_id, command_id, ok=body.ok, output=body.output, error=body.error
    )
    return JSONResponse(cmd.as_dict())
