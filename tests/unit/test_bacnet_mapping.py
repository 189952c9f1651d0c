"""BACnet scan records, the review file and the Brick mapping, on a scan recorded from the
test device (``tests/bacnet_device.py``) with ``--save-scan``."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from bacpypes3.basetypes import EngineeringUnits
from pyoxigraph import BlankNode, NamedNode, RdfFormat, Store

from app.domain.iris import BRICK, REF, UNIT
from app.graph.models import ModelValidator
from app.graph.ontology import default_sources
from app.settings import Settings
from ingest.bacnet.classify import Guess
from ingest.bacnet.job import guess_classes, prepare
from ingest.bacnet.mapping import BACNET, TGB, map_scan, series_id
from ingest.bacnet.review import (
    ReviewFormatError,
    apply_review,
    read_review,
    review_rows,
    write_review,
)
from ingest.bacnet.scan import Scan, ScanFormatError, load_scan, save_scan
from ingest.bacnet.units import BACNET_UNITS

RECORDED = Path(__file__).resolve().parents[1] / "fixtures" / "bacnet_scan.json"


def recorded() -> Scan:
    return load_scan(RECORDED)


def test_recorded_scan_round_trips(tmp_path: Path) -> None:
    scan = recorded()
    assert [d.instance for d in scan.devices] == [599]
    assert len(scan.devices[0].points) == 10
    zone = next(o for o in scan.devices[0].objects if o.name == "ZN-T")
    assert (zone.identifier, zone.units) == ("analog-input,1", "degrees-fahrenheit")
    fan = next(o for o in scan.devices[0].objects if o.name == "FAN-CMD")
    assert fan.present_value == "active"
    save_scan(scan, tmp_path / "again.json")
    assert load_scan(tmp_path / "again.json") == scan


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.update(format="something"), "$.format"),
        (lambda d: d.update(version=2), "$.version"),
        (lambda d: d.update(scanned_at="yesterday"), "$.scanned_at"),
        (lambda d: d["devices"][0].update(instance="599"), "$.devices[0].instance"),
        (lambda d: d["devices"][0]["objects"][2].update(instance=-1), "objects[2].instance"),
        (lambda d: d["devices"][0]["objects"][0].update(present_value=[1]), "present_value"),
        (lambda d: d["devices"].append(dict(d["devices"][0])), "appears twice"),
    ],
)
def test_a_broken_scan_file_names_the_problem(tmp_path: Path, change: object, message: str) -> None:
    data = json.loads(RECORDED.read_text())
    change(data)  # type: ignore[operator]
    path = tmp_path / "scan.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ScanFormatError) as caught:
        load_scan(path)
    assert message in caught.value.detail and str(path) in caught.value.detail
    assert caught.value.status == 400


def test_a_file_that_is_not_json_gives_its_position(tmp_path: Path) -> None:
    path = tmp_path / "scan.json"
    path.write_text('{"format": ')
    with pytest.raises(ScanFormatError, match="line 1, column"):
        load_scan(path)


def test_unit_table_names_real_bacnet_units_and_resolves_in_the_loaded_qudt() -> None:
    for name in BACNET_UNITS:
        assert str(EngineeringUnits(name)) == name
    qudt = next(s for s in default_sources(Settings().qudt_dir) if s.name == "qudt-units")
    store = Store()
    store.bulk_load(path=str(qudt.path), format=RdfFormat.N_QUADS)
    missing = [
        name
        for name in sorted({q for q, _ in BACNET_UNITS.values()})
        if not store.query(f"ASK {{ GRAPH ?g {{ <{UNIT}{name}> ?p ?o }} }}")
    ]
    assert missing == []


def test_mapping_is_deterministic_and_conforms(validator: ModelValidator) -> None:
    scan = recorded()
    first = map_scan(scan, guess_classes(scan))
    second = map_scan(scan, guess_classes(scan))
    assert first.triples == second.triples
    assert not any(
        isinstance(t.subject, BlankNode) or isinstance(t.object, BlankNode) for t in first.triples
    )
    report = validator.validate(first.triples)
    assert report.conforms, report.as_dict()["results"]
    assert not report.warnings

    triples = {
        (t.subject.value, t.predicate.value, t.object.value)  # type: ignore[union-attr]
        for t in first.triples
    }
    device = "urn:twingraph:bacnet:device-599"
    zone = f"{device}/analog-input-1"
    ref = f"{zone}/bacnet"
    assert (
        zone,
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#type",
        BRICK + "Zone_Air_Temperature_Sensor",
    ) in triples
    assert (zone, BRICK + "hasUnit", UNIT + "DEG_F") in triples
    assert (zone, BRICK + "isHostedBy", device) in triples
    assert (
        ref,
        "http://www.w3.org/1999/02/22-rdf-syntax-ns#type",
        REF + "BACnetReference",
    ) in triples
    assert (ref, BACNET + "object-identifier", "analog-input,1") in triples
    assert (ref, BACNET + "object-name", "ZN-T") in triples
    assert (ref, BACNET + "contains", device) in triples
    assert (ref, REF + "BACnetURI", "bacnet://599/analog-input,1/present-value") in triples
    ts = str(series_id(599, "analog-input,1"))
    assert (f"{zone}/timeseries", REF + "hasTimeseriesId", ts) in triples
    assert (device, "http://www.w3.org/1999/02/22-rdf-syntax-ns#type", BACNET + "device") in triples
    assert (zone, TGB + "classSource", "heuristic") in triples

    summary = first.summary()
    assert summary["points"] == 10 and summary["devices"] == 1
    assert summary["classified"] == 9 and summary["unclassified"] == 1
    assert summary["low_confidence"] == 1


def test_series_ids_depend_on_device_and_object_only() -> None:
    assert series_id(599, "analog-input,1") == series_id(599, "analog-input,1")
    assert series_id(599, "analog-input,1") != series_id(600, "analog-input,1")
    assert series_id(599, "analog-input,1") != series_id(599, "analog-value,1")


def _edit(path: Path, out: Path, changes: dict[str, dict[str, str]]) -> None:
    rows = list(review_rows(path))
    for row in rows:
        row.update(changes.get(row["object_name"], {}))
    with out.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_review_file_round_trip(tmp_path: Path) -> None:
    scan = recorded()
    guesses = guess_classes(scan)
    written = tmp_path / "review.csv"
    assert write_review(written, scan, guesses) == 10
    rows = list(review_rows(written))
    assert [r["object_name"] for r in rows[:2]] == ["MYSTERY-7", "XYZ-123"]  # least sure first
    confidences = [float(r["confidence"]) for r in rows]
    assert confidences == sorted(confidences)

    # applied unedited: nothing changes
    assert apply_review(guesses, read_review(written, scan)) == guesses

    edited = tmp_path / "edited.csv"
    _edit(
        written,
        edited,
        {
            "XYZ-123": {"brick_class": "brick:Mixed_Air_Temperature_Sensor"},
            "MYSTERY-7": {"brick_class": "skip"},
            "CLG-VLV": {"source": "review"},  # confirm the guess as it is
            "SA-TEMP": {"brick_class": ""},  # keep the guess
        },
    )
    decisions = read_review(edited, scan)
    reviewed = apply_review(guesses, decisions)
    xyz = reviewed[(599, "analog-input,10")]
    assert (xyz.brick_class, xyz.source, xyz.confidence) == (
        "Mixed_Air_Temperature_Sensor",
        "review",
        1.0,
    )
    assert "heuristic guessed Temperature_Sensor" in xyz.reason
    assert reviewed[(599, "analog-output,7")] == Guess(
        "Valve_Position_Command", 1.0, reviewed[(599, "analog-output,7")].reason, "review"
    )
    assert reviewed[(599, "analog-input,2")] == guesses[(599, "analog-input,2")]
    assert decisions.skip == {(599, "analog-value,9")}

    prepared = prepare(scan, apply_review_from=edited)
    mapping = prepared.mapping
    assert mapping.skipped == [(599, "analog-value,9")]
    assert len(mapping.points) == 9 and mapping.coverage == 1.0
    assert {p.obj.name for p in mapping.points if p.guess.source == "review"} == {
        "XYZ-123",
        "CLG-VLV",
    }


def test_review_errors_are_reported_together_by_line(tmp_path: Path) -> None:
    scan = recorded()
    written = tmp_path / "review.csv"
    write_review(written, scan, guess_classes(scan))
    edited = tmp_path / "edited.csv"
    _edit(
        written,
        edited,
        {
            "ZN-T": {"brick_class": "Zone_Air_Temprature_Sensor"},
            "DA-SP": {"brick_class": "AHU"},
            "RA-HUM": {"device_instance": "six"},
        },
    )
    with pytest.raises(ReviewFormatError) as caught:
        read_review(edited, scan)
    detail = caught.value.detail
    assert "3 problem(s)" in detail
    assert (
        "'Zone_Air_Temprature_Sensor' is not a current Brick point class (did you mean Zone_Air_Temperature_Sensor"
        in detail
    )
    assert "'AHU' is not a current Brick point class" in detail
    assert "device_instance 'six' is not a number" in detail
    assert caught.value.code == "invalid_review"

    missing = tmp_path / "missing.csv"
    missing.write_text("device_instance,object_name\n599,ZN-T\n")
    with pytest.raises(ReviewFormatError, match="lacks column"):
        read_review(missing, scan)

    duplicate = tmp_path / "duplicate.csv"
    duplicate.write_text(
        "device_instance,object_identifier,brick_class\n"
        '599,"analog-input,1",\n599,"analog-input,1",\n700,"analog-input,1",\n'
    )
    with pytest.raises(ReviewFormatError, match="already reviewed on line 2"):
        read_review(duplicate, scan)


def test_rows_for_objects_not_in_the_scan_are_reported_not_fatal(tmp_path: Path) -> None:
    scan = recorded()
    path = tmp_path / "review.csv"
    path.write_text('device_instance,object_identifier,brick_class\n700,"analog-input,1",Point\n')
    assert read_review(path, scan).unmatched == [(2, (700, "analog-input,1"))]


def test_an_empty_scan_stores_nothing() -> None:
    from datetime import UTC, datetime

    from app.errors import UnavailableError

    empty = Scan(devices=(), scanned_at=datetime.now(UTC), target="127.0.0.1:9")
    with pytest.raises(UnavailableError, match="no BACnet device.*nothing stored"):
        prepare(empty)


def test_points_with_units_outside_qudt_are_counted() -> None:
    scan = recorded()
    device = scan.devices[0]
    odd = type(device.objects[0])("analog-input", 77, "ZN-T2", None, "kilograms-per-square-meter")
    changed = Scan(
        devices=(type(device)(device.instance, device.address, device.name, objects=(odd,)),),
        scanned_at=scan.scanned_at,
    )
    mapping = map_scan(changed, guess_classes(changed))
    assert mapping.unknown_units == {"kilograms-per-square-meter": 1}
    assert not any(t.predicate == NamedNode(BRICK + "hasUnit") for t in mapping.triples)
