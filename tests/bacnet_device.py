"""A small BACnet/IP device for tests: a real bacpypes3 application in its own process.

    python tests/bacnet_device.py --address 127.0.0.1/8:47809 --instance 599

It serves a device object and a few point objects with the names, descriptions and units a
building controller would use (``ZN-T`` in degrees-fahrenheit, ``DA-SP``, ``FAN-CMD``, ...),
answers Who-Is, ReadProperty(Multiple) and COV subscriptions, and lets the zone temperature
drift so that polling sees changing values. It prints ``ready`` once its sockets are bound,
and runs until it is terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import time
from typing import Any

from bacpypes3.ipv4.app import NormalApplication
from bacpypes3.local.analog import AnalogInputObject, AnalogOutputObject, AnalogValueObject
from bacpypes3.local.binary import BinaryInputObject, BinaryValueObject
from bacpypes3.local.device import DeviceObject
from bacpypes3.pdu import IPv4Address

_FLAGS = [0, 0, 0, 0]

#: (class, instance, name, description, units, present value)
OBJECTS: tuple[tuple[Any, int, str, str | None, str | None, object], ...] = (
    (AnalogInputObject, 1, "ZN-T", "Zone air temperature", "degreesFahrenheit", 71.5),
    (AnalogInputObject, 2, "SA-TEMP", "Supply air temperature", "degreesFahrenheit", 55.2),
    (AnalogValueObject, 3, "DA-SP", None, "degreesFahrenheit", 55.0),
    (BinaryValueObject, 4, "FAN-CMD", "Supply fan start/stop", None, "active"),
    (AnalogInputObject, 5, "RA-HUM", None, "percentRelativeHumidity", 45.0),
    (AnalogInputObject, 6, "DUCT-SP", None, "inchesOfWater", 1.2),
    (AnalogOutputObject, 7, "CLG-VLV", "Cooling valve", "percent", 35.0),
    (BinaryInputObject, 8, "SF-STS", None, None, "active"),
    (AnalogValueObject, 9, "MYSTERY-7", None, "noUnits", 3.0),
    (AnalogInputObject, 10, "XYZ-123", None, "degreesFahrenheit", 68.0),
)


def build(address: str, instance: int, name: str) -> tuple[NormalApplication, Any]:
    device = DeviceObject(
        objectIdentifier=("device", instance),
        objectName=name,
        description="TwinGraph test controller",
        modelName="bacnet_device.py",
        vendorName="TwinGraph tests",
    )
    app = NormalApplication(device, IPv4Address(address))
    zone_temp = None
    for cls, inst, obj_name, description, units, value in OBJECTS:
        kwargs: dict[str, Any] = {
            "objectIdentifier": (_type_name(cls), inst),
            "objectName": obj_name,
            "presentValue": value,
            "statusFlags": _FLAGS,
        }
        if description:
            kwargs["description"] = description
        if units:
            kwargs["units"] = units
            kwargs["covIncrement"] = 0.1
        if cls is AnalogOutputObject:
            kwargs["relinquishDefault"] = value
        obj = cls(**kwargs)
        app.add_object(obj)
        if obj_name == "ZN-T":
            zone_temp = obj
    return app, zone_temp


def _type_name(cls: Any) -> str:
    return {
        AnalogInputObject: "analog-input",
        AnalogOutputObject: "analog-output",
        AnalogValueObject: "analog-value",
        BinaryInputObject: "binary-input",
        BinaryValueObject: "binary-value",
    }[cls]


async def serve(address: str, instance: int, name: str) -> None:
    app, zone_temp = build(address, instance, name)
    server = app.normal.server
    await asyncio.gather(*getattr(server, "_transport_tasks", []))
    print(f"ready {address} device {instance}", flush=True)
    start = time.monotonic()
    while True:
        await asyncio.sleep(0.2)
        if zone_temp is not None:
            zone_temp.presentValue = round(71.5 + math.sin(time.monotonic() - start), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--address", required=True, help="IP/prefix:port, e.g. 127.0.0.1/8:47809")
    parser.add_argument("--instance", type=int, default=599)
    parser.add_argument("--name", default="AHU-1-CTRL")
    args = parser.parse_args()
    asyncio.run(serve(args.address, args.instance, args.name))


if __name__ == "__main__":
    main()
