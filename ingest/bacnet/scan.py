"""A BACnet scan as plain records, saved to JSON and replayed offline.

A scan is what discovery saw, nothing inferred: devices (from I-Am and their device object)
and their objects (object-list, names, descriptions, units, present values). Classification
and mapping work on these records only, so a saved scan reproduces the model exactly without
a network.

File format (``format: "twingraph-bacnet-scan"``, ``version: 1``)::

    {"format": "twingraph-bacnet-scan", "version": 1,
     "scanned_at": "2026-11-22T10:00:00+00:00", "local_address": "192.168.1.20/24",
     "target": null,
     "devices": [{"instance": 599, "address": "192.168.1.31", "name": "AHU-1",
                  "description": null, "vendor_id": 5, "vendor_name": "...",
                  "model_name": "...",
                  "objects": [{"type": "analog-input", "instance": 1, "name": "ZN-T",
                               "description": "Zone temperature",
                               "units": "degrees-fahrenheit", "present_value": 71.5}]}]}

Names are BACnet's standard hyphenated enumeration names (``analog-input``,
``degrees-fahrenheit``); binary present values are ``"active"``/``"inactive"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

from app.errors import InvalidInputError

FORMAT = "twingraph-bacnet-scan"
VERSION = 1

#: A present value as recorded: numbers, booleans, enumeration names or text, or None.
PresentValue: TypeAlias = float | int | bool | str | None

#: Object types whose present value is a point reading; other objects (device, network
#: port, schedule, trend log, ...) are kept in the scan but not mapped to points.
POINT_TYPES = frozenset(
    {
        "analog-input",
        "analog-output",
        "analog-value",
        "binary-input",
        "binary-output",
        "binary-value",
        "multi-state-input",
        "multi-state-output",
        "multi-state-value",
        "integer-value",
        "positive-integer-value",
        "large-analog-value",
        "accumulator",
        "characterstring-value",
    }
)


class ScanFormatError(InvalidInputError):
    """A scan file that is not a TwinGraph BACnet scan, with the JSON path of the problem."""

    code = "invalid_scan"


@dataclass(frozen=True, slots=True)
class BacnetObject:
    type: str
    instance: int
    name: str | None = None
    description: str | None = None
    units: str | None = None
    present_value: PresentValue = None

    @property
    def identifier(self) -> str:
        """BACnet's textual object identifier, ``analog-input,1``."""
        return f"{self.type},{self.instance}"

    @property
    def is_point(self) -> bool:
        return self.type in POINT_TYPES


@dataclass(frozen=True, slots=True)
class BacnetDevice:
    instance: int
    address: str
    name: str | None = None
    description: str | None = None
    vendor_id: int | None = None
    vendor_name: str | None = None
    model_name: str | None = None
    objects: tuple[BacnetObject, ...] = ()

    @property
    def points(self) -> tuple[BacnetObject, ...]:
        return tuple(o for o in self.objects if o.is_point)


@dataclass(frozen=True, slots=True)
class Scan:
    devices: tuple[BacnetDevice, ...]
    scanned_at: datetime
    local_address: str | None = None
    target: str | None = None
    #: Problems met while reading (a device that stopped answering, ...); not fatal.
    notes: tuple[str, ...] = field(default=())

    @property
    def objects(self) -> int:
        return sum(len(d.objects) for d in self.devices)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "version": VERSION,
            "scanned_at": self.scanned_at.isoformat(),
            "local_address": self.local_address,
            "target": self.target,
            "notes": list(self.notes),
            "devices": [
                {
                    "instance": d.instance,
                    "address": d.address,
                    "name": d.name,
                    "description": d.description,
                    "vendor_id": d.vendor_id,
                    "vendor_name": d.vendor_name,
                    "model_name": d.model_name,
                    "objects": [
                        {
                            "type": o.type,
                            "instance": o.instance,
                            "name": o.name,
                            "description": o.description,
                            "units": o.units,
                            "present_value": o.present_value,
                        }
                        for o in d.objects
                    ],
                }
                for d in self.devices
            ],
        }

    @classmethod
    def from_json(cls, data: object) -> Scan:
        root = _obj(data, "$")
        if root.get("format") != FORMAT:
            raise ScanFormatError(f"$.format: expected {FORMAT!r}, not a TwinGraph BACnet scan")
        if root.get("version") != VERSION:
            raise ScanFormatError(
                f"$.version: {root.get('version')!r} is not a supported version ({VERSION})"
            )
        try:
            scanned_at = datetime.fromisoformat(_str(root.get("scanned_at"), "$.scanned_at"))
        except ValueError as exc:
            raise ScanFormatError(f"$.scanned_at: not an ISO 8601 date-time ({exc})") from exc
        devices = []
        for i, raw in enumerate(_list(root.get("devices"), "$.devices")):
            at = f"$.devices[{i}]"
            d = _obj(raw, at)
            objects = []
            for j, raw_obj in enumerate(_list(d.get("objects", []), f"{at}.objects")):
                oat = f"{at}.objects[{j}]"
                o = _obj(raw_obj, oat)
                objects.append(
                    BacnetObject(
                        type=_str(o.get("type"), f"{oat}.type"),
                        instance=_int(o.get("instance"), f"{oat}.instance"),
                        name=_opt_str(o.get("name"), f"{oat}.name"),
                        description=_opt_str(o.get("description"), f"{oat}.description"),
                        units=_opt_str(o.get("units"), f"{oat}.units"),
                        present_value=_value(o.get("present_value"), f"{oat}.present_value"),
                    )
                )
            devices.append(
                BacnetDevice(
                    instance=_int(d.get("instance"), f"{at}.instance"),
                    address=_str(d.get("address"), f"{at}.address"),
                    name=_opt_str(d.get("name"), f"{at}.name"),
                    description=_opt_str(d.get("description"), f"{at}.description"),
                    vendor_id=_opt_int(d.get("vendor_id"), f"{at}.vendor_id"),
                    vendor_name=_opt_str(d.get("vendor_name"), f"{at}.vendor_name"),
                    model_name=_opt_str(d.get("model_name"), f"{at}.model_name"),
                    objects=tuple(objects),
                )
            )
        seen: set[int] = set()
        for device in devices:
            if device.instance in seen:
                raise ScanFormatError(f"$.devices: device {device.instance} appears twice")
            seen.add(device.instance)
        notes = [_str(n, "$.notes[]") for n in _list(root.get("notes", []), "$.notes")]
        return cls(
            devices=tuple(devices),
            scanned_at=scanned_at,
            local_address=_opt_str(root.get("local_address"), "$.local_address"),
            target=_opt_str(root.get("target"), "$.target"),
            notes=tuple(notes),
        )


def save_scan(scan: Scan, path: Path) -> None:
    path.write_text(json.dumps(scan.to_json(), indent=2, ensure_ascii=False) + "\n")


def load_scan(path: Path) -> Scan:
    """Read a saved scan; a file that is not one raises :class:`ScanFormatError`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ScanFormatError(f"{path}: not UTF-8 text ({exc.reason})") from exc
    except json.JSONDecodeError as exc:
        raise ScanFormatError(
            f"{path}: not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    try:
        return Scan.from_json(data)
    except ScanFormatError as exc:
        raise ScanFormatError(f"{path}: {exc.detail}") from exc


def _obj(value: object, at: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ScanFormatError(f"{at}: expected an object, got {type(value).__name__}")
    return value


def _list(value: object, at: str) -> list[Any]:
    if not isinstance(value, list):
        raise ScanFormatError(f"{at}: expected a list, got {type(value).__name__}")
    return value


def _str(value: object, at: str) -> str:
    if not isinstance(value, str) or not value:
        raise ScanFormatError(f"{at}: expected a non-empty string, got {value!r}")
    return value


def _opt_str(value: object, at: str) -> str | None:
    return None if value is None else _str(value, at)


def _int(value: object, at: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ScanFormatError(f"{at}: expected a non-negative integer, got {value!r}")
    return value


def _opt_int(value: object, at: str) -> int | None:
    return None if value is None else _int(value, at)


def _value(value: object, at: str) -> PresentValue:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise ScanFormatError(f"{at}: expected a number, boolean, string or null, got {value!r}")
