"""Haystack readers on small grids written here, so they are covered without shared data."""

from __future__ import annotations

import datetime as dt
import json
import math
import uuid

import pytest

from ingest.haystack.csv_grid import parse_csv
from ingest.haystack.job import his_to_readings
from ingest.haystack.json_formats import parse_json
from ingest.haystack.readers import parse_grid
from ingest.haystack.trio import parse_trio
from ingest.haystack.values import (
    MARKER,
    NA_VALUE,
    REMOVE,
    Coord,
    DateTime,
    HaystackParseError,
    Number,
    Record,
    Ref,
    Symbol,
    Uri,
)
from ingest.haystack.writers import hayson_value
from ingest.haystack.zinc import parse_scalar, parse_zinc

ZINC = """ver:"3.0" database:"test"
id,dis,site,equip,point,siteRef,equipRef,area,unit,geoCoord,tz,his,kind
@s1 "Site One","Site One",M,,,,,1200ft²,,C(37.5,-77.4),"New_York",,
@e1 "AHU-1","AHU-1",,M,,@s1 "Site One",,,,,,,
@p1 "AHU-1 DAT","AHU-1 DAT",,,M,@s1 "Site One",@e1 "AHU-1",,"°F",,"New_York",M,"Number"
"""

TRIO = """id: @s1 "Site One"
dis: "Site One"
site
area: 1200ft²
geoCoord: C(37.5,-77.4)
tz: New_York
---
id: @e1 "AHU-1"
dis: AHU-1
equip
siteRef: @s1 "Site One"
---
// a comment line
id: @p1 "AHU-1 DAT"
dis: "AHU-1 DAT"
point
siteRef: @s1 "Site One"
equipRef: @e1 "AHU-1"
unit: "°F"
tz: "New_York"
his
kind: "Number"
"""

HAYSON = {
    "_kind": "grid",
    "meta": {"ver": "3.0"},
    "cols": [{"name": "id"}],
    "rows": [
        {
            "id": {"_kind": "ref", "val": "s1", "dis": "Site One"},
            "dis": "Site One",
            "site": {"_kind": "marker"},
            "area": {"_kind": "number", "val": 1200, "unit": "ft²"},
            "geoCoord": {"_kind": "coord", "lat": 37.5, "lng": -77.4},
            "tz": "New_York",
        },
        {
            "id": {"_kind": "Ref", "val": "e1", "dis": "AHU-1"},
            "dis": "AHU-1",
            "equip": {"_kind": "Marker"},
            "siteRef": {"_kind": "ref", "val": "s1", "dis": "Site One"},
        },
        {
            "id": {"_kind": "ref", "val": "p1", "dis": "AHU-1 DAT"},
            "dis": "AHU-1 DAT",
            "point": {"_kind": "marker"},
            "siteRef": {"_kind": "ref", "val": "s1", "dis": "Site One"},
            "equipRef": {"_kind": "ref", "val": "e1", "dis": "AHU-1"},
            "unit": "°F",
            "tz": "New_York",
            "his": {"_kind": "marker"},
            "kind": "Number",
        },
    ],
}

JSON3 = {
    "meta": {"ver": "3.0"},
    "cols": [{"name": "id"}],
    "rows": [
        {
            "id": "r:s1 Site One",
            "dis": "Site One",
            "site": "m:",
            "area": "n:1200 ft²",
            "geoCoord": "c:37.5,-77.4",
            "tz": "New_York",
        },
        {"id": "r:e1 AHU-1", "dis": "s:AHU-1", "equip": "m:", "siteRef": "r:s1 Site One"},
        {
            "id": "r:p1 AHU-1 DAT",
            "dis": "AHU-1 DAT",
            "point": "m:",
            "siteRef": "r:s1 Site One",
            "equipRef": "r:e1 AHU-1",
            "unit": "°F",
            "tz": "New_York",
            "his": "m:",
            "kind": "Number",
        },
    ],
}

CSV = """id,dis,site,equip,point,siteRef,equipRef,area,unit,geoCoord,tz,his,kind
@s1 Site One,"Site One",✓,,,,,1200ft²,,"C(37.5,-77.4)","New_York",,
@e1 AHU-1,"AHU-1",,✓,,@s1 Site One,,,,,,,
@p1 AHU-1 DAT,"AHU-1 DAT",,,✓,@s1 Site One,@e1 AHU-1,,"°F",,"New_York",✓,"Number"
"""


def _canonical(records: list[Record]) -> list[list[tuple[str, str, str | None]]]:
    """Records compared with ref display names included (refs compare by id alone)."""
    return sorted(
        sorted((k, repr(v), v.dis if isinstance(v, Ref) else None) for k, v in r.items())
        for r in records
    )


def test_five_encodings_give_the_same_records() -> None:
    zinc = parse_zinc(ZINC).rows
    assert len(zinc) == 3
    assert zinc[0]["area"] == Number(1200.0, "ft²")
    assert zinc[0]["geoCoord"] == Coord(37.5, -77.4)
    assert zinc[2]["equipRef"] == Ref("e1", "AHU-1")
    expected = _canonical(zinc)
    assert _canonical(parse_trio(TRIO).rows) == expected
    assert _canonical(parse_json(json.dumps(HAYSON)).rows) == expected
    assert _canonical(parse_json(json.dumps(JSON3)).rows) == expected
    assert _canonical(parse_csv(CSV).rows) == expected


def test_zinc_grid_meta_columns_and_short_rows() -> None:
    grid = parse_zinc('ver:"3.0" a:1 b\nx dis:"X",y\n1,\n,"two"\n3\n')
    assert grid.meta == {"ver": "3.0", "a": Number(1.0), "b": MARKER}
    assert grid.columns == ["x", "y"]
    assert grid.column_meta == {"x": {"dis": "X"}}
    assert grid.rows == [{"x": Number(1.0)}, {"y": "two"}, {"x": Number(3.0)}]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("M", MARKER),
        ("R", REMOVE),
        ("NA", NA_VALUE),
        ("T", True),
        ("F", False),
        ("-12.5e2kW", Number(-1250.0, "kW")),
        ("1_000", Number(1000.0)),
        ("72.5°F", Number(72.5, "°F")),
        ("-INF", Number(-math.inf)),
        ('"a\\"b\\n\\u00e9"', 'a"b\né'),
        ("`http://x/y`", Uri("http://x/y")),
        ("^elecMeter", Symbol("elecMeter")),
        ("2021-03-04", dt.date(2021, 3, 4)),
        ("10:00", dt.time(10, 0)),
        ("23:59:59.123", dt.time(23, 59, 59, 123000)),
        (
            "2020-07-01T00:00:00-04:00 New_York",
            DateTime(
                dt.datetime(2020, 7, 1, tzinfo=dt.timezone(dt.timedelta(hours=-4))), "New_York"
            ),
        ),
        ("2020-07-01T00:00:00Z UTC", DateTime(dt.datetime(2020, 7, 1, tzinfo=dt.UTC), "UTC")),
        ('[1, "a", M]', [Number(1.0), "a", MARKER]),
        ('{a:1 b c:"x"}', {"a": Number(1.0), "b": MARKER, "c": "x"}),
    ],
)
def test_zinc_scalars(text: str, value: object) -> None:
    assert parse_scalar(text) == value


def test_nested_grid_in_zinc() -> None:
    grid = parse_zinc('ver:"3.0"\na,b\n<<\nver:"3.0"\nx\n1\n2\n>>,M\n')
    inner = grid.rows[0]["a"]
    assert grid.rows[0]["b"] == MARKER
    assert not isinstance(inner, str | list | dict) and inner is not None
    assert getattr(inner, "rows", None) == [{"x": Number(1.0)}, {"x": Number(2.0)}]


def test_parse_errors_carry_a_position() -> None:
    with pytest.raises(HaystackParseError) as info:
        parse_zinc('ver:"3.0"\na,b\n1,"unterminated\n')
    assert (info.value.line, info.value.column) == (3, 16)
    with pytest.raises(HaystackParseError, match="trailing"):
        parse_scalar("12 13")
    with pytest.raises(HaystackParseError):
        parse_grid("{not json", "json")


def test_csv_quoted_ambiguous_strings_stay_strings() -> None:
    grid = parse_csv('a,b,c,d\n"""M""","""12""",M,12\n')
    assert grid.rows == [{"a": "M", "b": "12", "c": MARKER, "d": Number(12.0)}]


def test_trio_multiline_string() -> None:
    grid = parse_trio("id: @x\ndoc:\n  line one\n  line two\nsite\n")
    assert grid.rows == [{"id": Ref("x"), "doc": "line one\nline two", "site": MARKER}]


def test_hayson_round_trips_through_encode() -> None:
    records = parse_zinc(ZINC).rows
    encoded = {"_kind": "grid", "cols": [], "rows": [hayson_value(r) for r in records]}
    assert _canonical(parse_json(json.dumps(encoded)).rows) == _canonical(records)


def test_history_grid_to_readings() -> None:
    grid = parse_zinc(
        'ver:"3.0" id:@p1 hisStart:2020-07-01T00:00:00Z UTC\nts,val\n'
        "2020-07-01T00:00:00Z UTC,16°F\n2020-07-01T01:00:00Z UTC,NA\n"
        "2020-07-01T02:00:00Z UTC,T\n"
    )
    point = uuid.uuid4()
    readings = his_to_readings(grid, point)
    assert [r.value for r in readings] == [16.0, None, True]
    assert readings[0].time == dt.datetime(2020, 7, 1, tzinfo=dt.UTC)
    assert {r.point for r in readings} == {point}
    with pytest.raises(HaystackParseError):
        his_to_readings(parse_zinc('ver:"3.0"\nts,val\n,1\n'), point)
