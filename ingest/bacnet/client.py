"""BACnet/IP with bacpypes3: Who-Is/I-Am discovery, object lists, property reads.

The only module that imports bacpypes3. Its errors (which derive from ``BaseException``) are
caught here and turned into notes on the scan or into :class:`BacnetUnavailableError`;
values are turned into plain Python (:mod:`ingest.bacnet.scan` records).

bacpypes3 retries forever when it cannot bind its socket, so the address is test-bound
first and a failure reported at once.
"""

from __future__ import annotations

import math
import socket
import struct
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from bacpypes3.apdu import AbortPDU, AbortReason, ErrorRejectAbortNack
from bacpypes3.app import Application
from bacpypes3.basetypes import ErrorType
from bacpypes3.ipv4.app import NormalApplication
from bacpypes3.local.device import DeviceObject
from bacpypes3.pdu import Address, IPv4Address
from bacpypes3.primitivedata import Boolean, Enumerated, ObjectIdentifier, Real

from app.errors import InvalidInputError, UnavailableError
from ingest.bacnet.scan import POINT_TYPES, BacnetDevice, BacnetObject, PresentValue, Scan

#: Properties read from every point object, in this order.
OBJECT_PROPERTIES = ("object-name", "description", "units", "present-value")
DEVICE_PROPERTIES = ("object-name", "description", "vendor-name", "model-name")


class ScanProgress(Protocol):
    """Told how far a scan got: devices that answered, objects found, objects read."""

    def devices(self, count: int) -> None: ...

    def objects(self, count: int) -> None: ...

    def advance(self) -> None: ...


class NoProgress:
    def devices(self, count: int) -> None:
        pass

    def objects(self, count: int) -> None:
        pass

    def advance(self) -> None:
        pass


class BacnetUnavailableError(UnavailableError):
    code = "bacnet_unavailable"


@dataclass(frozen=True, slots=True)
class Network:
    """How TwinGraph joins the BACnet/IP network.

    ``local_address`` is bacpypes3's notation: ``IP/prefix[:port]`` (``192.168.1.20/24``;
    the prefix gives the broadcast address Who-Is goes to; port 47808 by default) or
    ``host`` (the default interface, no broadcast mask).
    """

    local_address: str
    local_instance: int = 4194300
    #: Per-request timeout and retries of our side (BACnet's APDU timeout).
    apdu_timeout_ms: int = 2000
    apdu_retries: int = 1
    #: Objects per ReadPropertyMultiple request.
    batch: int = 16


def parse_local_address(text: str) -> IPv4Address:
    try:
        return IPv4Address(text)
    except (ValueError, RuntimeError) as exc:  # RuntimeError: an interface name it cannot find
        raise InvalidInputError(
            f"--address {text!r} is not a BACnet/IP address (IP/prefix[:port], e.g. "
            "192.168.1.20/24 or 127.0.0.1/8:47809, or 'host'): " + str(exc),
            code="invalid_address",
        ) from exc


def parse_target(text: str) -> Address:
    try:
        return Address(text)
    except ValueError as exc:
        raise InvalidInputError(
            f"--target {text!r} is not a BACnet address (IP[:port], e.g. 192.168.1.31 or "
            "127.0.0.1:47809): " + str(exc),
            code="invalid_address",
        ) from exc


def _check_bindable(address: IPv4Address) -> None:
    host, port = address.addrTuple
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise BacnetUnavailableError(
                f"cannot open BACnet/IP on {host}:{port}: {exc.strerror or exc} "
                "(is the address one of this machine's, and the port free?)"
            ) from exc


@asynccontextmanager
async def application(net: Network) -> AsyncIterator[Application]:
    """A bacpypes3 application (a BACnet device of its own) on ``net.local_address``."""
    address = parse_local_address(net.local_address)
    _check_bindable(address)
    device = DeviceObject(
        objectIdentifier=("device", net.local_instance),
        objectName=f"TwinGraph-{net.local_instance}",
        apduTimeout=net.apdu_timeout_ms,
        numberOfApduRetries=net.apdu_retries,
    )
    app = NormalApplication(device, address)
    try:
        yield app
    finally:
        app.close()


def plain(value: Any) -> PresentValue:
    """A bacpypes3 value as JSON-friendly Python; errors and non-finite numbers -> None."""
    if value is None or isinstance(value, ErrorType | ErrorRejectAbortNack):
        return None
    if isinstance(value, Boolean):
        return bool(value)
    if isinstance(value, Enumerated):  # BinaryPV, EngineeringUnits, ...: the standard name
        return str(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        return _single(float(value)) if isinstance(value, Real) else float(value)
    if isinstance(value, str):
        return str(value)
    return str(value)


def _single(value: float) -> float:
    """The shortest decimal that is the same single-precision REAL (55.2, not 55.2000007...)."""
    packed = struct.pack("<f", value)
    for digits in range(6, 10):
        short = float(f"{value:.{digits}g}")
        if struct.pack("<f", short) == packed:
            return short
    return value


def _text(value: Any) -> str | None:
    out = plain(value)
    return out if isinstance(out, str) and out else None


def _no_response(exc: BaseException) -> bool:
    return isinstance(exc, AbortPDU) and exc.apduAbortRejectReason == AbortReason.noResponse


async def read_properties(
    app: Application,
    address: Address,
    objects: Sequence[ObjectIdentifier],
    properties: Sequence[str],
) -> dict[tuple[str, str], Any]:
    """``{(object id, property): value}``; ReadPropertyMultiple, else one read at a time.

    A property the object does not have is simply absent. A device that does not answer
    at all raises :class:`BacnetUnavailableError`.
    """
    out: dict[tuple[str, str], Any] = {}
    if not objects:
        return out
    params: list[Any] = []
    for oid in objects:
        params += [oid, list(properties)]
    try:
        result = await app.read_property_multiple(address, params)
    except ErrorRejectAbortNack as exc:
        if _no_response(exc):
            raise BacnetUnavailableError(f"BACnet device at {address} does not answer") from exc
        result = exc
    if isinstance(result, list):
        for oid, prop, _index, value in result:
            if not isinstance(value, ErrorType):
                out[(str(oid), str(prop))] = value
        return out
    # No ReadPropertyMultiple (rejected, or the answer would not fit): one by one.
    for oid in objects:
        for prop in properties:
            try:
                out[(str(oid), prop)] = await app.read_property(address, oid, prop)
            except ErrorRejectAbortNack as exc:
                if _no_response(exc):
                    raise BacnetUnavailableError(
                        f"BACnet device at {address} does not answer"
                    ) from exc
    return out


async def object_list(
    app: Application, address: Address, device: ObjectIdentifier
) -> list[ObjectIdentifier]:
    """The device's object-list: whole, or element by element when it does not fit."""
    try:
        value = await app.read_property(address, device, "object-list")
        return list(value)
    except ErrorRejectAbortNack as exc:
        if _no_response(exc):
            raise BacnetUnavailableError(f"BACnet device at {address} does not answer") from exc
    count = int(await app.read_property(address, device, "object-list", 0))
    return [await app.read_property(address, device, "object-list", i) for i in range(1, count + 1)]


async def _read_device(
    app: Application, i_am: Any, net: Network, progress: ScanProgress
) -> BacnetDevice:
    address: Address = i_am.pduSource
    dev_id: ObjectIdentifier = i_am.iAmDeviceIdentifier
    props = await read_properties(app, address, [dev_id], DEVICE_PROPERTIES)
    key = str(dev_id)
    ids = await object_list(app, address, dev_id)
    points = [o for o in ids if str(o[0]) in POINT_TYPES]
    others = [o for o in ids if str(o[0]) not in POINT_TYPES and str(o) != key]
    progress.objects(len(points) + len(others))
    values: dict[tuple[str, str], Any] = {}
    for start in range(0, len(points), net.batch):
        chunk = points[start : start + net.batch]
        values |= await read_properties(app, address, chunk, OBJECT_PROPERTIES)
        for _ in chunk:
            progress.advance()
    for start in range(0, len(others), net.batch):
        chunk = others[start : start + net.batch]
        values |= await read_properties(app, address, chunk, ("object-name", "description"))
        for _ in chunk:
            progress.advance()
    objects = []
    for oid in points + others:
        k = str(oid)
        units = _text(values.get((k, "units")))
        objects.append(
            BacnetObject(
                type=str(oid[0]),
                instance=int(oid[1]),
                name=_text(values.get((k, "object-name"))),
                description=_text(values.get((k, "description"))),
                units=units,
                present_value=plain(values.get((k, "present-value"))),
            )
        )
    objects.sort(key=lambda o: (o.type, o.instance))
    vendor = getattr(i_am, "vendorID", None)
    return BacnetDevice(
        instance=int(dev_id[1]),
        address=str(address),
        name=_text(props.get((key, "object-name"))),
        description=_text(props.get((key, "description"))),
        vendor_id=int(vendor) if vendor is not None else None,
        vendor_name=_text(props.get((key, "vendor-name"))),
        model_name=_text(props.get((key, "model-name"))),
        objects=tuple(objects),
    )


async def discover(
    net: Network,
    *,
    target: str | None = None,
    low: int | None = None,
    high: int | None = None,
    wait_s: float = 3.0,
    progress: ScanProgress | None = None,
) -> Scan:
    """Who-Is (broadcast, or sent to ``target``), then read every device that answered.

    ``low``/``high`` limit the device instances asked for. A device that stops answering
    while being read is left out with a note; the others are still returned.
    """
    if (low is None) != (high is None):
        raise InvalidInputError("give both --low and --high, or neither", code="invalid_range")
    if low is not None and high is not None and not 0 <= low <= high <= 4194303:
        raise InvalidInputError(
            f"device instance range {low}..{high} is not within 0..4194303", code="invalid_range"
        )
    destination = parse_target(target) if target else None
    started = datetime.now(UTC)
    async with application(net) as app:
        i_ams = await app.who_is(low, high, destination, timeout=wait_s)
        answered: dict[int, Any] = {}
        for i_am in i_ams:
            instance = int(i_am.iAmDeviceIdentifier[1])
            if instance != net.local_instance:
                answered.setdefault(instance, i_am)
        progress = progress or NoProgress()
        progress.devices(len(answered))
        devices: list[BacnetDevice] = []
        notes: list[str] = []
        for instance in sorted(answered):
            try:
                devices.append(await _read_device(app, answered[instance], net, progress))
            except (BacnetUnavailableError, ErrorRejectAbortNack) as exc:
                detail = exc.detail if isinstance(exc, BacnetUnavailableError) else repr(exc)
                notes.append(f"device {instance} at {answered[instance].pduSource}: {detail}")
    return Scan(
        devices=tuple(devices),
        scanned_at=started,
        local_address=net.local_address,
        target=target,
        notes=tuple(notes),
    )
