"""Haystack unit symbols -> QUDT unit local names (``http://qudt.org/vocab/unit/<name>``).

Only units that resolve in the QUDT 3.1.0 release TwinGraph loads are listed (a test checks
this). A symbol that is not here is kept in the record's tags and reported, never guessed.
"""

from __future__ import annotations

from app.domain.iris import UNIT

HAYSTACK_TO_QUDT: dict[str, str] = {
    # temperature (Haystack's Δ units are intervals; QUDT has no separate interval unit)
    "°F": "DEG_F",
    "fahrenheit": "DEG_F",
    "Δ°F": "DEG_F",
    "°C": "DEG_C",
    "celsius": "DEG_C",
    "Δ°C": "DEG_C",
    "K": "K",
    # ratios
    "%": "PERCENT",
    "percent": "PERCENT",
    "%RH": "PERCENT_RH",
    "ppm": "PPM",
    "ppb": "PPB",
    # power and energy
    "W": "W",
    "kW": "KiloW",
    "Wh": "W-HR",
    "kWh": "KiloW-HR",
    "MWh": "MegaW-HR",
    "kVA": "KiloV-A",
    "kVAR": "KiloV-A_Reactive",
    "V": "V",
    "A": "A",
    "Hz": "HZ",
    "BTU": "BTU_IT",
    "kBTU": "KiloBTU_IT",
    "BTU/h": "BTU_IT-PER-HR",
    "Btu/h": "BTU_IT-PER-HR",
    "ton": "TON_FG",
    "tonref": "TON_FG",
    "therm": "THM_US",
    "W/m²": "W-PER-M2",
    "kWh/m²": "KiloW-HR-PER-M2",
    # flow
    "cfm": "FT3-PER-MIN",
    "ft³/min": "FT3-PER-MIN",
    "gal/min": "GAL_US-PER-MIN",
    "gpm": "GAL_US-PER-MIN",
    "L/s": "L-PER-SEC",
    "L/min": "L-PER-MIN",
    "m³/h": "M3-PER-HR",
    "m³/s": "M3-PER-SEC",
    "kg/h": "KiloGM-PER-HR",
    "lb/h": "LB-PER-HR",
    # pressure
    "inH₂O": "IN_H2O",
    "inH2O": "IN_H2O",
    "psi": "PSI",
    "Pa": "PA",
    "kPa": "KiloPA",
    "bar": "BAR",
    "inHg": "IN_HG",
    # speed, light, rotation, time
    "fpm": "FT-PER-MIN",
    "ft/min": "FT-PER-MIN",
    "m/s": "M-PER-SEC",
    "mph": "MI-PER-HR",
    "lx": "LUX",
    "lux": "LUX",
    "rpm": "REV-PER-MIN",
    "s": "SEC",
    "sec": "SEC",
    "min": "MIN",
    "h": "HR",
    "hr": "HR",
    # length, area, volume
    "ft": "FT",
    "m": "M",
    "mm": "MilliM",
    "ft²": "FT2",
    "m²": "M2",
    "gal": "GAL_US",
    "m³": "M3",
    "°": "DEG",
    # currency
    "$": "CCY_USD",
    "USD": "CCY_USD",
}


def qudt_unit(symbol: str | None) -> str | None:
    """The QUDT unit IRI for a Haystack unit symbol, or None when it is not known."""
    if not symbol:
        return None
    name = HAYSTACK_TO_QUDT.get(symbol.strip())
    return UNIT + name if name else None
