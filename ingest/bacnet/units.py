"""BACnet engineering units -> QUDT units and the quantity they measure.

Keys are BACnet's standard enumeration names as bacpypes3 prints them and the ASHRAE
BACnet ontology names them (``degrees-fahrenheit``). Only QUDT units present in the QUDT
3.1.0 release TwinGraph loads are listed (a test checks both sides). A unit not listed is
kept on the BACnet reference and reported, never guessed.

The quantity feeds the point classifier: a temperature unit is evidence for a temperature
point, and a unit that contradicts the name lowers the confidence.
"""

from __future__ import annotations

from app.domain.iris import UNIT

#: BACnet unit -> (QUDT unit local name, quantity).
BACNET_UNITS: dict[str, tuple[str, str]] = {
    "degrees-fahrenheit": ("DEG_F", "temperature"),
    "degrees-celsius": ("DEG_C", "temperature"),
    "degrees-kelvin": ("K", "temperature"),
    "delta-degrees-fahrenheit": ("DEG_F", "temperature"),
    "delta-degrees-kelvin": ("K", "temperature"),
    "percent-relative-humidity": ("PERCENT_RH", "humidity"),
    "percent": ("PERCENT", "percent"),
    "parts-per-million": ("PPM", "concentration"),
    "parts-per-billion": ("PPB", "concentration"),
    "cubic-feet-per-minute": ("FT3-PER-MIN", "flow"),
    "liters-per-second": ("L-PER-SEC", "flow"),
    "liters-per-minute": ("L-PER-MIN", "flow"),
    "cubic-meters-per-hour": ("M3-PER-HR", "flow"),
    "cubic-meters-per-second": ("M3-PER-SEC", "flow"),
    "us-gallons-per-minute": ("GAL_US-PER-MIN", "flow"),
    "kilograms-per-hour": ("KiloGM-PER-HR", "flow"),
    "pounds-mass-per-hour": ("LB-PER-HR", "flow"),
    "inches-of-water": ("IN_H2O", "pressure"),
    "pascals": ("PA", "pressure"),
    "kilopascals": ("KiloPA", "pressure"),
    "pounds-force-per-square-inch": ("PSI", "pressure"),
    "bars": ("BAR", "pressure"),
    "watts": ("W", "power"),
    "kilowatts": ("KiloW", "power"),
    "kilovolt-amperes": ("KiloV-A", "power"),
    "kilovolt-amperes-reactive": ("KiloV-A_Reactive", "power"),
    "btus-per-hour": ("BTU_IT-PER-HR", "power"),
    "tons-refrigeration": ("TON_FG", "power"),
    "watt-hours": ("W-HR", "energy"),
    "kilowatt-hours": ("KiloW-HR", "energy"),
    "megawatt-hours": ("MegaW-HR", "energy"),
    "volts": ("V", "voltage"),
    "amperes": ("A", "current"),
    "hertz": ("HZ", "frequency"),
    "revolutions-per-minute": ("REV-PER-MIN", "speed"),
    "feet-per-minute": ("FT-PER-MIN", "velocity"),
    "meters-per-second": ("M-PER-SEC", "velocity"),
    "luxes": ("LUX", "illuminance"),
    "seconds": ("SEC", "time"),
    "minutes": ("MIN", "time"),
    "hours": ("HR", "time"),
}

#: Units that say nothing about the quantity.
NO_UNITS = frozenset({"no-units"})


def qudt_unit(bacnet_units: str | None) -> str | None:
    """The QUDT unit IRI for a BACnet unit name, or None when none is known."""
    entry = BACNET_UNITS.get(bacnet_units or "")
    return UNIT + entry[0] if entry else None


def quantity(bacnet_units: str | None) -> str | None:
    """What the unit measures (``temperature``, ``flow``, ...), or None when unknown."""
    entry = BACNET_UNITS.get(bacnet_units or "")
    return entry[1] if entry else None
