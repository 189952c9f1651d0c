"""The Haystack ingest job on published exports: carytown in five encodings, alpha (2,032
records), carytown's history grids, and an end-to-end ingest into a real platform."""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path

import pytest
from pyoxigraph import NamedNode
from rich.console import Console

from app.domain.iris import REF
from app.graph.models import ModelValidator
from app.platform import Platform
from app.telemetry.readings import TelemetryStore
from ingest.haystack.cli import run_haystack_ingest
from ingest.haystack.job import haystack_to_triples, his_to_readings
from ingest.haystack.readers import read_grid, read_records
from ingest.haystack.values import Record, Ref
from tests.conftest import PgServer, run_cli, shared_data

pytestmark = pytest.mark.shared_data

CARYTOWN = (
    "carytown.zinc",
    "carytown.json",
    "carytown.hayson.json",
    "carytown.trio",
    "carytown.csv",
)
HIS_COUNTS = {"0144bdd8": 6, "4ea35663": 6, "bbc36976": 6}


def carytown(name: str = "carytown.zinc") -> Path:
    path = shared_data("haystack", "carytown", name)
    if not path.is_file():
        pytest.skip(f"{path} is absent from ../shared/data")
    return path


def alpha() -> list[Record]:
    path = shared_data("haystack", "example_buildings", "alpha.json")
    if not path.is_file():
        pytest.skip(f"{path} is absent from ../shared/data")
    return read_records(path)


def _canonical(records: list[Record]) -> list[list[tuple[str, str, str | None]]]:
    return sorted(
        sorted((k, repr(v), v.dis if isinstance(v, Ref) else None) for k, v in r.items())
        for r in records
    )


def test_five_carytown_encodings_give_identical_records_and_triples() -> None:
    records = {name: read_records(carytown(name)) for name in CARYTOWN}
    assert {len(r) for r in records.values()} == {24}
    expected = _canonical(records["carytown.zinc"])
    for name, recs in records.items():
        assert _canonical(recs) == expected, name
    triples = {name: haystack_to_triples(recs).triples for name, recs in records.items()}
    first = triples["carytown.zinc"]
    for name, t in triples.items():
        assert t == first, name


def test_carytown_maps_and_validates(validator: ModelValidator) -> None:
    result = haystack_to_triples(read_records(carytown()))
    assert result.counts == {"site": 1, "building": 1, "equip": 4, "point": 18}
    assert [u.dis for u in result.unclassified] == ["Richmond"]  # the region record
    assert len(result.his_points) == 18
    report = validator.validate(result.triples)
    assert report.conforms, [(v.focus_node, v.message) for v in report.violations]
    assert report.violations == ()


def test_alpha_maps_and_validates(validator: ModelValidator) -> None:
    records = alpha()
    assert len(records) == 2032
    t0 = time.perf_counter()
    result = haystack_to_triples(records)
    mapped_s = time.perf_counter() - t0
    report = validator.validate(result.triples)
    assert report.conforms, [(v.focus_node, v.message) for v in report.violations[:20]]
    assert result.counts["point"] == 1846
    assert result.counts["equip"] == 184
    share = result.point_share
    print(
        f"\nalpha: {result.points_specific}/{result.points_total} points typed specifically "
        f"({share:.1%}), {len(result.generic)} generic entities, {len(result.triples)} triples, "
        f"mapped in {mapped_s:.2f}s, validated in {report.seconds:.2f}s"
    )
    assert share > 0.95
    assert haystack_to_triples(records).triples == result.triples  # re-running: identical


def test_carytown_history_grids_become_readings() -> None:
    records = read_records(carytown())
    his_points = haystack_to_triples(records).his_points
    folder = shared_data("timeseries", "carytown_his")
    for suffix, count in HIS_COUNTS.items():
        hid = f"p_demo_r_23a44701-{suffix}"
        grid = read_grid(folder / f"{hid}.zinc")
        readings = his_to_readings(grid, his_points[hid])
        assert len(readings) == count
        assert all(r.point == his_points[hid] for r in readings)
        assert all(r.time.tzinfo is not None for r in readings)
        assert [r.time for r in readings] == sorted(r.time for r in readings)
        assert all(isinstance(r.value, float) for r in readings)


def test_ingest_into_the_platform(platform: Platform, graph_iri: str) -> None:
    console = Console(file=io.StringIO(), width=200)
    summary = run_haystack_ingest(platform, carytown(), graph_iri, None, console)
    assert summary.ingest.report is not None and summary.ingest.report.conforms
    assert summary.ingest.graph_triples == len(summary.mapping.triples)
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "18 point" in text and "not mapped" in text
    # the time-series ids are where the point directory looks for them
    rows = platform.store.query(
        f"SELECT ?id WHERE {{ GRAPH <{graph_iri}> {{ ?p <{REF}hasExternalReference>/<{REF}hasTimeseriesId> ?id }} }}",
        union_default=False,
    )
    ids = {r["id"].value for r in rows}  # type: ignore[index,union-attr]
    assert ids == {str(u) for u in summary.mapping.his_points.values()}
    again = run_haystack_ingest(platform, carytown("carytown.trio"), graph_iri, None, console)
    assert again.ingest.graph_triples == summary.ingest.graph_triples  # idempotent re-ingest
    assert NamedNode(graph_iri).value in {g.iri for g in platform.models.graphs()}


def test_carytown_history_grids_import_as_readings(
    tmp_path: Path, pg_server: PgServer, telemetry_store: TelemetryStore
) -> None:
    import os
    import subprocess

    site = shared_data("haystack", "carytown", "carytown.zinc")
    grids = sorted(shared_data("timeseries", "carytown_his").glob("*.zinc"))
    assert len(grids) == 3
    env = {
        **os.environ,
        "TWINGRAPH_DATA_DIR": str(tmp_path),
        "TWINGRAPH_DATABASE_URL": pg_server.dsn,
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(*args, env=env)

    assert cli("ingest", "haystack", str(site)).returncode == 0
    r = cli("telemetry", "import-his", *map(str, grids))
    assert r.returncode == 0, r.stderr
    counts = [line for line in r.stdout.splitlines() if "readings" in line]
    assert len(counts) == 3
    for grid_path in grids:
        expected = his_to_readings(read_grid(grid_path), uuid.uuid4())
        assert f"{grid_path.name} -> " in r.stdout
        assert f": {len(expected)} readings ({len(expected)} new" in " ".join(r.stdout.split())
    again = cli("telemetry", "import-his", *map(str, grids))
    assert "0 new" in again.stdout
    missing = cli("telemetry", "import-his", str(grids[0]), "--point", "no-such-point")
    assert missing.returncode == 1 and "no point" in missing.stderr
