"""Guessing the Brick point class of a BACnet object from its name, description, units and type.

BACnet says what an object *is* only in free text. The heuristic, in order:

1. **Tokens.** The object name and description are split at separators, case changes and
   letter/digit boundaries (``AHU1_SaTemp`` -> ``ahu 1 sa temp``); each token is looked up in
   :data:`ABBREVIATIONS`, a table of common building-automation abbreviations -> Brick tags
   (``zn`` -> Zone Air, ``sat`` -> Supply Air Temperature, ``vlv`` -> Valve). Function words
   (``sp``, ``cmd``, ``sts``, ``alm``) name the point's family; equipment prefixes (``ahu``,
   ``vav``), object-type prefixes (``ai``, ``bv``) and numbers are recognised and add nothing.
2. **Units** add the quantity they measure (degrees-fahrenheit -> Temperature; percent on a
   damper or valve -> Position). ``sp`` with a pressure unit and no other quantity in the name
   is a static pressure, not a setpoint (``DUCT-SP`` in inches-of-water).
3. **Function.** From the name when it says so, else from the object type: inputs measure
   (analog-input -> Sensor, binary-input -> Status/Alarm), outputs command, values (AV, BV,
   MSV) could be any of several and are left open.
4. **Class.** Among Brick's non-deprecated point classes whose tags all appear in the evidence
   and whose family matches the function, the one using most tags from the object name (the
   name is what integrators write with care; descriptions are often boilerplate), then most
   tags overall, then alphabetical. Nothing matches -> the bare family class (Sensor,
   Command, ...) or brick:Point, which counts as *unclassified*.
5. **Confidence** = 0.3 recognised + 0.3 explained + 0.2 unit + 0.2 function, each in [0, 1]:
   *recognised* is the share of the name's tokens found in the table (0.5 when only the
   description was understood); *explained* the share of the name's meaningful tokens (the
   description's when the name has none) whose tags or family the chosen class uses; *unit* 1 when the unit's quantity matches the class, 0.5 when
   the unit tells nothing, 0 when it contradicts; *function* 1 when name and object type agree,
   0.8 when one decides alone, 0.4 when neither does, 0.3 when they disagree. A contradicting
   unit caps the confidence at 0.5, a generic class at 0.3. Guesses below
   :data:`LOW_CONFIDENCE` are flagged for review.

Deterministic: the same object always gets the same class, confidence and reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from ingest.bacnet.scan import BacnetObject
from ingest.bacnet.units import quantity
from ingest.haystack.brick_tags import BrickClass, point_classes

#: Guesses below this confidence are listed as low-confidence and worth a review.
LOW_CONFIDENCE = 0.6

#: Families a point class can belong to (Brick's direct subclasses of Point we use).
FAMILIES = ("Sensor", "Setpoint", "Command", "Status", "Alarm", "Parameter", "Limit")
#: Classes that say no more than "a point" or its family: unclassified.
GENERIC_CLASSES = frozenset({"Point", *FAMILIES})

#: Token -> Brick tags. Media default to Air when the text names an air location.
ABBREVIATIONS: dict[str, tuple[str, ...]] = {
    # where in the system
    "zn": ("Zone",),
    "zone": ("Zone",),
    "z": ("Zone",),
    "space": ("Zone",),
    "spc": ("Zone",),
    "rm": ("Zone",),
    "room": ("Zone",),
    "sa": ("Supply", "Discharge", "Air"),
    "da": ("Discharge", "Supply", "Air"),
    "supply": ("Supply", "Discharge"),
    "sup": ("Supply", "Discharge"),
    "sply": ("Supply", "Discharge"),
    "discharge": ("Discharge", "Supply"),
    "disch": ("Discharge", "Supply"),
    "dis": ("Discharge", "Supply"),
    "ra": ("Return", "Air"),
    "ret": ("Return",),
    "rtn": ("Return",),
    "return": ("Return",),
    "oa": ("Outside", "Air"),
    "osa": ("Outside", "Air"),
    "outside": ("Outside",),
    "outdoor": ("Outside",),
    "ma": ("Mixed", "Air"),
    "mix": ("Mixed",),
    "mixed": ("Mixed",),
    "ea": ("Exhaust", "Air"),
    "exh": ("Exhaust",),
    "exhaust": ("Exhaust",),
    "duct": ("Duct", "Air"),
    "air": ("Air",),
    "bldg": ("Building",),
    "building": ("Building",),
    "filter": ("Filter", "Change"),
    "fltr": ("Filter", "Change"),
    "filt": ("Filter", "Change"),
    # compound air temperatures
    "sat": ("Supply", "Discharge", "Air", "Temperature"),
    "dat": ("Discharge", "Supply", "Air", "Temperature"),
    "rat": ("Return", "Air", "Temperature"),
    "oat": ("Outside", "Air", "Temperature"),
    "mat": ("Mixed", "Air", "Temperature"),
    "eat": ("Exhaust", "Air", "Temperature"),
    "zat": ("Zone", "Air", "Temperature"),
    "znt": ("Zone", "Air", "Temperature"),
    "dsp": ("Duct", "Air", "Static", "Pressure"),
    # water
    "water": ("Water",),
    "wtr": ("Water",),
    "chw": ("Chilled", "Water"),
    "chws": ("Chilled", "Water", "Supply", "Leaving"),
    "chwr": ("Chilled", "Water", "Return", "Entering"),
    "hw": ("Hot", "Water"),
    "hws": ("Hot", "Water", "Supply", "Leaving"),
    "hwr": ("Hot", "Water", "Return", "Entering"),
    "cw": ("Condenser", "Water"),
    "cdw": ("Condenser", "Water"),
    # quantities
    "t": ("Temperature",),
    "tmp": ("Temperature",),
    "temp": ("Temperature",),
    "temperature": ("Temperature",),
    "rh": ("Humidity", "Relative"),
    "hum": ("Humidity", "Relative"),
    "humidity": ("Humidity", "Relative"),
    "co2": ("CO2",),
    "co": ("CO",),
    "p": ("Pressure",),
    "pr": ("Pressure",),
    "press": ("Pressure",),
    "pressure": ("Pressure",),
    "static": ("Static", "Pressure"),
    "dp": ("Differential", "Pressure"),
    "diff": ("Differential",),
    "flow": ("Flow",),
    "flw": ("Flow",),
    "cfm": ("Flow",),
    "pos": ("Position",),
    "position": ("Position",),
    "dmpr": ("Damper",),
    "dpr": ("Damper",),
    "damper": ("Damper",),
    "vlv": ("Valve",),
    "valve": ("Valve",),
    "spd": ("Speed",),
    "speed": ("Speed",),
    "freq": ("Frequency",),
    "kw": ("Power",),
    "power": ("Power",),
    "pwr": ("Power",),
    "kwh": ("Energy",),
    "energy": ("Energy",),
    "amps": ("Current",),
    "current": ("Current",),
    "volt": ("Voltage",),
    "voltage": ("Voltage",),
    "lvl": ("Level",),
    "level": ("Level",),
    "lux": ("Illuminance",),
    # modes and qualifiers
    "occ": ("Occupied", "Occupancy"),
    "occupied": ("Occupied", "Occupancy"),
    "occupancy": ("Occupancy",),
    "unocc": ("Unoccupied",),
    "clg": ("Cool", "Cooling"),
    "cool": ("Cool", "Cooling"),
    "cooling": ("Cool", "Cooling"),
    "htg": ("Heat", "Heating"),
    "heat": ("Heat", "Heating"),
    "heating": ("Heat", "Heating"),
    "eff": ("Effective",),
    "effective": ("Effective",),
    "min": ("Min",),
    "max": ("Max",),
    "avg": ("Average",),
    "average": ("Average",),
    "hi": ("High",),
    "high": ("High",),
    "lo": ("Low",),
    "low": ("Low",),
    "lead": ("Lead",),
    "lag": ("Lag",),
    "run": ("Run",),
    "ss": ("Start", "Stop"),
    "start": ("Start",),
    "stop": ("Stop",),
    "on": ("On",),
    "off": ("Off",),
    "en": ("Enable",),
    "ena": ("Enable",),
    "enable": ("Enable",),
    "mode": ("Mode",),
    "limit": ("Limit",),
    "lim": ("Limit",),
    "reset": ("Reset",),
    # equipment named by the point
    "fan": ("Fan",),
    "sf": ("Supply", "Discharge", "Fan"),
    "rf": ("Return", "Fan"),
    "ef": ("Exhaust", "Fan"),
    "pump": ("Pump",),
    "pmp": ("Pump",),
    "lights": ("Lighting",),
    "lighting": ("Lighting",),
    "ltg": ("Lighting",),
}

#: Token -> the family it names.
FUNCTION_WORDS: dict[str, str] = {
    "sp": "Setpoint",
    "spt": "Setpoint",
    "stpt": "Setpoint",
    "setpt": "Setpoint",
    "setpoint": "Setpoint",
    "set": "Setpoint",
    "cmd": "Command",
    "cmnd": "Command",
    "command": "Command",
    "sts": "Status",
    "stat": "Status",
    "status": "Status",
    "fb": "Status",
    "feedback": "Status",
    "alm": "Alarm",
    "alarm": "Alarm",
    "alrm": "Alarm",
    "fault": "Alarm",
    "flt": "Alarm",
    "sensor": "Sensor",
    "sens": "Sensor",
}
#: Families a function word allows (the classes' families); setpoint limits are setpoints too.
_ALLOWED_BY_WORD: dict[str, tuple[str, ...]] = {
    "Setpoint": ("Setpoint", "Limit", "Parameter"),
    "Command": ("Command",),
    "Status": ("Status",),
    "Alarm": ("Alarm",),
    "Sensor": ("Sensor",),
}

#: Recognised tokens that say nothing about the point: equipment, object-type prefixes.
CONTEXT_WORDS = frozenset(
    {
        *("ahu", "rtu", "vav", "fcu", "mau", "doas", "erv", "hrv", "chlr", "chiller", "blr"),
        *("boiler", "ct", "hx", "hp", "wshp", "uh", "cuh", "tu", "vfd", "dev", "ctrl", "ctl"),
        *("ai", "ao", "av", "bi", "bo", "bv", "mi", "mo", "mv", "msi", "mso", "msv"),
        *("pt", "pnt", "point", "flr", "fl", "floor"),
        *("the", "of", "a", "an", "for", "and", "in", "at", "to"),
    }
)

#: Object type -> (families it allows, whether it decides the family by itself).
OBJECT_TYPE_FUNCTIONS: dict[str, tuple[tuple[str, ...], bool]] = {
    "analog-input": (("Sensor",), True),
    "analog-output": (("Command",), True),
    "analog-value": (("Setpoint", "Sensor", "Command", "Parameter"), False),
    "binary-input": (("Status", "Alarm"), True),
    "binary-output": (("Command",), True),
    "binary-value": (("Command", "Status", "Alarm"), False),
    "multi-state-input": (("Status",), True),
    "multi-state-output": (("Command",), True),
    "multi-state-value": (("Command", "Status", "Setpoint"), False),
    "integer-value": (("Sensor", "Setpoint", "Command", "Parameter"), False),
    "positive-integer-value": (("Sensor", "Setpoint", "Command", "Parameter"), False),
    "large-analog-value": (("Sensor", "Setpoint", "Command", "Parameter"), False),
    "accumulator": (("Sensor",), True),
    "characterstring-value": (("Status", "Parameter"), False),
}

#: Unit quantity -> (tags it adds as evidence, class tags that agree with it).
QUANTITY_TAGS: dict[str, tuple[tuple[str, ...], frozenset[str]]] = {
    "temperature": (("Temperature",), frozenset({"Temperature"})),
    "humidity": (("Humidity", "Relative"), frozenset({"Humidity"})),
    "flow": (("Flow",), frozenset({"Flow"})),
    "pressure": (("Pressure",), frozenset({"Pressure"})),
    "power": (("Power",), frozenset({"Power"})),
    "energy": (("Energy",), frozenset({"Energy"})),
    "voltage": (("Voltage",), frozenset({"Voltage"})),
    "current": (("Current",), frozenset({"Current"})),
    "frequency": (("Frequency",), frozenset({"Frequency", "Speed"})),
    "speed": (("Speed",), frozenset({"Speed"})),
    "velocity": (("Velocity",), frozenset({"Velocity", "Speed"})),
    "illuminance": (("Illuminance",), frozenset({"Illuminance", "Luminance"})),
    "concentration": (
        ("Level",),
        frozenset({"CO2", "CO", "NO2", "Ozone", "TVOC", "Methane", "Radon", "Concentration"}),
    ),
}

_AIR_LOCATIONS = frozenset({"Zone", "Supply", "Discharge", "Return", "Outside", "Mixed", "Exhaust"})
_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_DIGITS = re.compile(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])")


@dataclass(frozen=True, slots=True)
class Guess:
    """A point class for one object: a Brick class local name, how sure, and why."""

    brick_class: str
    confidence: float
    reason: str
    source: Literal["heuristic", "review"] = "heuristic"

    @property
    def generic(self) -> bool:
        """Only typed as brick:Point or a bare family (Sensor, Command, ...): unclassified."""
        return self.brick_class in GENERIC_CLASSES

    @property
    def low_confidence(self) -> bool:
        return not self.generic and self.confidence < LOW_CONFIDENCE


def tokens(text: str | None) -> list[str]:
    """Lower-case tokens: split at separators, case changes and letter/digit boundaries,
    keeping table words that contain digits (``CO2``) whole."""
    out: list[str] = []
    for chunk in re.split(r"[^A-Za-z0-9]+", text or ""):
        for part in _CAMEL.split(chunk):
            if not part:
                continue
            low = part.lower()
            if low in ABBREVIATIONS or low in FUNCTION_WORDS:
                out.append(low)
            else:
                out.extend(p.lower() for p in _DIGITS.split(part) if p)
    return out


@dataclass(slots=True)
class _Token:
    text: str
    tags: frozenset[str]
    family: str | None


def _read(words: Iterable[str]) -> tuple[list[_Token], int, int]:
    """Meaningful tokens, and (recognised, total) counts over the non-numeric words."""
    found: list[_Token] = []
    recognised = total = 0
    for w in words:
        if w.isdigit():
            continue
        total += 1
        if w in ABBREVIATIONS:
            found.append(_Token(w, frozenset(ABBREVIATIONS[w]), None))
        elif w in FUNCTION_WORDS:
            found.append(_Token(w, frozenset(), FUNCTION_WORDS[w]))
        elif w not in CONTEXT_WORDS:
            continue
        recognised += 1
    return found, recognised, total


def classify(obj: BacnetObject) -> Guess:
    """The heuristic guess for one object (see the module docstring)."""
    # Numbers never count, so VAV-1-ZN-T and VAV-2-ZN-T share one computation.
    words = tuple(w for w in tokens(obj.name) if not w.isdigit())
    return _classify(obj.type, words, tuple(tokens(obj.description)), obj.units)


@lru_cache(maxsize=8192)
def _classify(
    obj_type: str, name_words: tuple[str, ...], desc_words: tuple[str, ...], units: str | None
) -> Guess:
    name_tokens, recognised, total = _read(name_words)
    desc_tokens, _, _ = _read(desc_words)
    qty = quantity(units)
    unit_tags, agreeing = QUANTITY_TAGS.get(qty or "", ((), frozenset()))
    notes: list[str] = []

    # "SP" in a pressure unit, with no other quantity named: static pressure, not a setpoint.
    named = frozenset().union(*(t.tags for t in name_tokens + desc_tokens))
    if (
        qty == "pressure"
        and any(t.text == "sp" for t in name_tokens + desc_tokens)
        and not named & {"Temperature", "Humidity", "Flow", "CO2", "Speed"}
    ):
        static = _Token("sp", frozenset({"Static", "Pressure"}), None)
        name_tokens = [static if t.text == "sp" else t for t in name_tokens]
        desc_tokens = [static if t.text == "sp" else t for t in desc_tokens]
        notes.append("sp read as static pressure (pressure unit)")
    meaningful = name_tokens + desc_tokens
    text_tags = frozenset().union(*(t.tags for t in meaningful))
    name_tags = frozenset().union(*(t.tags for t in name_tokens))

    name_families = {t.family for t in meaningful if t.family}
    type_families, decisive = OBJECT_TYPE_FUNCTIONS.get(obj_type, (FAMILIES, False))
    if name_families:
        allowed = {f for fam in name_families for f in _ALLOWED_BY_WORD[fam]}
        family_tags = set(name_families)
        agrees = bool(name_families & set(type_families))
        function_score = (1.0 if decisive else 0.8) if agrees else 0.3
    else:
        allowed = set(type_families)
        family_tags = set(type_families)
        function_score = 0.8 if decisive else 0.4

    evidence = set(text_tags) | set(unit_tags) | family_tags
    if evidence & _AIR_LOCATIONS and "Water" not in evidence:
        evidence.add("Air")
    if qty == "percent" and evidence & {"Damper", "Valve"}:
        evidence.add("Position")
    if "Setpoint" in name_families and not evidence & {"Heat", "Cool"}:
        evidence.add("Target")

    candidates = [
        cls
        for cls in point_classes()
        if cls.tags and cls.tags <= evidence and cls.families & allowed and cls.tags - set(FAMILIES)
    ]
    # the name is the best evidence: more tags from the name wins, then more tags, then
    # more tags from the description, then the alphabetically first name
    best: BrickClass | None = min(
        candidates,
        key=lambda c: (-len(c.tags & name_tags), -len(c.tags), -len(c.tags & text_tags), c.name),
        default=None,
    )

    if best is None:
        fallback = next(iter(name_families)) if len(name_families) == 1 else None
        if fallback is None and decisive and len(type_families) == 1:
            fallback = type_families[0]
        cls_name = fallback or "Point"
        cls_tags: frozenset[str] = frozenset({cls_name})
        cls_families: frozenset[str] = frozenset({cls_name})
    else:
        cls_name, cls_tags, cls_families = best.name, best.tags, best.families

    recognised_share = recognised / total if total else 0.0
    if not name_tokens and desc_tokens:
        recognised_share = max(recognised_share, 0.5)
    judged = name_tokens or desc_tokens
    explained = sum(1 for t in judged if t.tags & cls_tags or (t.family in cls_families))
    explained_share = explained / len(judged) if judged else 0.0
    # no telling unit: neutral; else it agrees with the class or contradicts it
    unit_score = 0.5 if qty is None or not agreeing else float(bool(cls_tags & agreeing))
    confidence = round(
        0.3 * recognised_share + 0.3 * explained_share + 0.2 * unit_score + 0.2 * function_score,
        2,
    )
    if unit_score == 0.0:
        confidence = min(confidence, 0.5)
    if cls_name in GENERIC_CLASSES:
        confidence = min(confidence, 0.3)

    unknown = [w for w in name_words if _unknown(w)]
    reason = _reason(obj_type, units, meaningful, qty, name_families, decisive, unknown, notes)
    return Guess(cls_name, confidence, reason)


def _unknown(word: str) -> bool:
    return word not in ABBREVIATIONS and word not in FUNCTION_WORDS and word not in CONTEXT_WORDS


def _reason(
    obj_type: str,
    units: str | None,
    meaningful: list[_Token],
    qty: str | None,
    name_families: set[str],
    decisive: bool,
    unknown: list[str],
    notes: list[str],
) -> str:
    parts = []
    words = [f"{t.text}->{'+'.join(sorted(t.tags)) if t.tags else t.family}" for t in meaningful]
    if words:
        parts.append("text " + " ".join(dict.fromkeys(words)))
    if unknown:
        parts.append("unrecognised " + " ".join(dict.fromkeys(unknown)))
    if units:
        parts.append(f"units {units}" + (f"->{qty}" if qty else " (no quantity)"))
    if name_families:
        parts.append(f"{obj_type}; function from name")
    else:
        parts.append(obj_type + ("" if decisive else " (function ambiguous)"))
    return "; ".join(parts + notes)
