"""The BACnet point-class heuristic: tokens, classes for common names, confidence."""

from __future__ import annotations

import pytest

from ingest.bacnet.classify import (
    ABBREVIATIONS,
    LOW_CONFIDENCE,
    QUANTITY_TAGS,
    classify,
    tokens,
)
from ingest.bacnet.scan import BacnetObject
from ingest.haystack.brick_tags import point_classes


def obj(
    name: str, kind: str = "analog-input", units: str | None = None, description: str | None = None
) -> BacnetObject:
    return BacnetObject(kind, 1, name, description, units)


def test_tokens_split_separators_case_changes_and_digits() -> None:
    assert tokens("AHU1_SaTemp") == ["ahu", "1", "sa", "temp"]
    assert tokens("VAV-2-01:DA-T") == ["vav", "2", "01", "da", "t"]
    assert tokens("SATemp") == ["sa", "temp"]
    assert tokens("ZN-CO2") == ["zn", "co2"]  # a table word with a digit stays whole
    assert tokens(None) == []


@pytest.mark.parametrize(
    ("name", "kind", "units", "expected"),
    [
        ("ZN-T", "analog-input", "degrees-fahrenheit", "Zone_Air_Temperature_Sensor"),
        ("SA-TEMP", "analog-input", "degrees-fahrenheit", "Supply_Air_Temperature_Sensor"),
        ("AHU1_SaTemp", "analog-input", "degrees-celsius", "Supply_Air_Temperature_Sensor"),
        ("DA-SP", "analog-value", "degrees-fahrenheit", "Supply_Air_Temperature_Setpoint"),
        ("OA-T", "analog-input", "degrees-fahrenheit", "Outside_Air_Temperature_Sensor"),
        ("RA-HUM", "analog-input", "percent-relative-humidity", "Return_Air_Humidity_Sensor"),
        ("ZN-CO2", "analog-input", "parts-per-million", "Zone_CO2_Level_Sensor"),
        ("SA-FLOW", "analog-input", "cubic-feet-per-minute", "Supply_Air_Flow_Sensor"),
        (
            "CHWS-T",
            "analog-input",
            "degrees-fahrenheit",
            "Leaving_Chilled_Water_Temperature_Sensor",
        ),
        ("FAN-CMD", "binary-value", None, "Fan_Command"),
        ("SF-STS", "binary-input", None, "Fan_Status"),
        ("SF-SPD", "analog-output", "percent", "Fan_Speed_Command"),
        ("OA-DMPR", "analog-output", "percent", "Damper_Position_Command"),
        ("OCC", "binary-input", None, "Occupancy_Status"),
        ("FILTER-ALM", "binary-input", None, "Change_Filter_Alarm"),
        (
            "OCC-CLG-SP",
            "analog-value",
            "degrees-fahrenheit",
            "Occupied_Cooling_Temperature_Setpoint",
        ),
    ],
)
def test_common_names_get_specific_classes(
    name: str, kind: str, units: str | None, expected: str
) -> None:
    guess = classify(obj(name, kind, units))
    assert guess.brick_class == expected, guess.reason
    assert not guess.generic and not guess.low_confidence
    assert guess.confidence >= LOW_CONFIDENCE


def test_sp_in_a_pressure_unit_is_static_pressure_not_a_setpoint() -> None:
    guess = classify(obj("DUCT-SP", "analog-input", "inches-of-water"))
    assert guess.brick_class == "Air_Static_Pressure_Sensor"
    assert "static pressure" in guess.reason
    # the same letters on a temperature are a setpoint
    assert classify(obj("DA-SP", "analog-value", "degrees-fahrenheit")).brick_class.endswith(
        "_Setpoint"
    )


def test_a_contradicting_unit_flags_the_guess_for_review() -> None:
    agreeing = classify(obj("ZN-T", units="degrees-fahrenheit"))
    contradicting = classify(obj("ZN-T", units="cubic-feet-per-minute"))
    assert agreeing.confidence > 0.9
    assert contradicting.brick_class == "Zone_Air_Temperature_Sensor"  # the name decides
    assert contradicting.confidence <= 0.5 and contradicting.low_confidence


def test_names_that_say_nothing() -> None:
    nothing = classify(obj("MYSTERY-7", "analog-value", "no-units"))
    assert nothing.brick_class == "Point" and nothing.generic
    assert not nothing.low_confidence  # unclassified, counted separately
    assert "unrecognised mystery" in nothing.reason
    # the unit alone gives a class, but a doubtful one
    by_unit = classify(obj("XYZ-123", "analog-input", "degrees-fahrenheit"))
    assert by_unit.brick_class == "Temperature_Sensor"
    assert by_unit.low_confidence and by_unit.confidence < 0.4
    # the object type alone gives the family
    assert classify(obj("XYZ-9", "binary-output")).brick_class == "Command"


def test_a_description_stands_in_for_a_cryptic_name() -> None:
    guess = classify(obj("AI-3", units="degrees-celsius", description="Outside air temperature"))
    assert guess.brick_class == "Outside_Air_Temperature_Sensor"
    assert not guess.low_confidence


def test_ambiguous_object_types_lower_the_confidence() -> None:
    output = classify(obj("FAN-SS", "binary-output"))
    value = classify(obj("FAN-SS", "binary-value"))
    assert output.brick_class == value.brick_class == "Start_Stop_Command"
    assert value.confidence < output.confidence


def test_deterministic() -> None:
    o = obj("ZN-T", units="degrees-fahrenheit", description="Zone air temperature")
    assert classify(o) == classify(o)


def test_every_tag_in_the_tables_is_a_brick_point_tag() -> None:
    brick_tags = frozenset().union(*(c.tags for c in point_classes()))
    used = {t for tags in ABBREVIATIONS.values() for t in tags}
    used |= {t for tags, agreeing in QUANTITY_TAGS.values() for t in (*tags, *agreeing)}
    assert used <= brick_tags, used - brick_tags


def test_cli_option_combinations_are_checked_before_any_work() -> None:
    from pathlib import Path

    from ingest.bacnet.cli import _check_options

    base: dict[str, object] = {
        "address": None,
        "from_scan": None,
        "target": None,
        "low": None,
        "high": None,
        "poll": None,
        "rounds": None,
        "duration": None,
        "cov": False,
        "dry_run": False,
    }

    def check(**changes: object) -> str | None:
        return _check_options(**(base | changes))  # type: ignore[arg-type]

    scan = Path("scan.json")
    assert check(address="127.0.0.1/8") is None
    assert check(from_scan=scan) is None
    assert "--address" in (check() or "")
    assert "not with --from-scan" in (check(from_scan=scan, target="127.0.0.1") or "")
    assert "need --address" in (check(from_scan=scan, poll=5.0) or "")
    assert "not both" in (check(address="h", poll=5.0, cov=True) or "")
    assert "--duration" in (check(address="h", cov=True) or "")
    assert "apply to --poll" in (check(address="h", rounds=3) or "")
    assert "positive" in (check(address="h", poll=0.0) or "")
    assert "cannot poll" in (check(address="h", poll=1.0, dry_run=True) or "")
    assert check(address="h", poll=1.0, rounds=2) is None
    assert check(address="h", cov=True, duration=5.0) is None
