"""Telemetry over HTTP against a real PostgreSQL, joined to the demo building's points."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from pyoxigraph import RdfFormat

from tests.conftest import Server
from tests.factories import vav_model

#: Later than anything else the tests write, and later at each use: the newest write wins
#: ``latest`` even when another store mode's run wrote to the same demo points.
_LATER = itertools.count(1)
T_FAR = datetime(2090, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def demo_points(server: Server) -> list[uuid.UUID]:
    refs = [r for r in server.platform.points.all() if "fixture" in r.point or "demo" in r.point]
    assert len(refs) > 20
    return [r.uuid for r in refs]


@pytest.fixture
def fresh_time() -> Iterator[datetime]:
    # Every test writes at its own, ever later day: tests sharing the database and the demo
    # points never collide, and each test's newest reading is the point's latest.
    yield T_FAR + timedelta(days=next(_LATER))


def post(server: Server, body: object, scope: str = "write") -> httpx.Response:
    return httpx.post(f"{server.url}/telemetry", json=body, headers=server.auth(scope), timeout=30)


def batch(point: uuid.UUID, start: datetime, values: list[object]) -> dict[str, object]:
    return {
        "readings": [
            {"point": str(point), "time": (start + timedelta(minutes=i)).isoformat(), "value": v}
            for i, v in enumerate(values)
        ]
    }


def test_ingest_read_back_buckets_latest_and_duplicates(
    server: Server, demo_points: list[uuid.UUID], fresh_time: datetime
) -> None:
    p = demo_points[0]
    r = post(server, batch(p, fresh_time, [20.0, 21.0, 22.0, 23.0]))
    assert r.status_code == 200, r.text
    assert r.json() == {"accepted": 4, "inserted": 4, "duplicates": 0}
    again = post(server, batch(p, fresh_time, [20.0, 21.0, 22.0, 23.0]))
    assert again.json()["inserted"] == 0 and again.json()["duplicates"] == 4

    params = {"start": fresh_time.isoformat(), "end": (fresh_time + timedelta(hours=1)).isoformat()}
    raw = httpx.get(f"{server.url}/points/{p}/readings", params=params, headers=server.auth("read"))
    assert [x["value"] for x in raw.json()["readings"]] == [20.0, 21.0, 22.0, 23.0]
    avg = httpx.get(
        f"{server.url}/points/{p}/readings",
        params={**params, "bucket": "1h", "agg": "avg"},
        headers=server.auth("read"),
    )
    assert [x["value"] for x in avg.json()["readings"]] == [21.5]
    latest = httpx.get(f"{server.url}/points/{p}/latest", headers=server.auth("read")).json()
    assert latest["value"] == 23.0


def test_late_out_of_order_data_is_accepted_and_latest_only_moves_forward(
    server: Server, demo_points: list[uuid.UUID], fresh_time: datetime
) -> None:
    p = demo_points[1]
    assert post(server, batch(p, fresh_time + timedelta(minutes=10), [5])).status_code == 200
    assert post(server, batch(p, fresh_time, [1, 2])).status_code == 200
    latest = httpx.get(f"{server.url}/points/{p}/latest", headers=server.auth("read")).json()
    assert latest["value"] == 5
    body = httpx.get(
        f"{server.url}/points/{p}/readings",
        params={
            "start": fresh_time.isoformat(),
            "end": (fresh_time + timedelta(hours=1)).isoformat(),
        },
        headers=server.auth("read"),
    ).json()
    assert [x["value"] for x in body["readings"]] == [1, 2, 5]


def test_booleans_and_strings_round_trip(
    server: Server, demo_points: list[uuid.UUID], fresh_time: datetime
) -> None:
    p = demo_points[2]
    assert post(server, batch(p, fresh_time, [True, "occupied", None])).status_code == 200
    body = httpx.get(
        f"{server.url}/points/{p}/readings",
        params={
            "start": fresh_time.isoformat(),
            "end": (fresh_time + timedelta(hours=1)).isoformat(),
        },
        headers=server.auth("read"),
    ).json()
    assert [x["value"] for x in body["readings"]] == [True, "occupied", None]


def test_unknown_uuid_rejects_the_whole_batch(
    server: Server, demo_points: list[uuid.UUID], fresh_time: datetime
) -> None:
    stranger = uuid.uuid4()
    body = batch(demo_points[3], fresh_time, [1.0])
    body["readings"].append({"point": str(stranger), "time": fresh_time.isoformat(), "value": 2.0})  # type: ignore[attr-defined]
    r = post(server, body)
    assert r.status_code == 400 and r.json()["code"] == "unknown_points"
    assert r.json()["unknown"] == [str(stranger)]
    got = server.platform.telemetry.range(  # type: ignore[union-attr]
        point=demo_points[3], start=fresh_time, end=fresh_time + timedelta(hours=1)
    )
    assert got == []


@pytest.mark.parametrize(
    ("reading", "fragment"),
    [
        ({"time": "2026-01-01T00:00:00", "value": 1}, "zone"),
        ({"time": "yesterday", "value": 1}, "isoformat"),
        ({"time": "2026-01-01T00:00:00Z", "value": [1]}, "number"),
        ({"time": "2026-01-01T00:00:00Z"}, None),
        ({"point": "not-a-uuid", "time": "2026-01-01T00:00:00Z", "value": 1}, "hexadecimal"),
        ({"point": 42, "time": "2026-01-01T00:00:00Z", "value": 1}, "UUID string"),
    ],
)
def test_bad_readings_are_refused_with_their_index(
    server: Server, demo_points: list[uuid.UUID], reading: dict[str, object], fragment: str | None
) -> None:
    good = {"point": str(demo_points[4]), "time": "2026-01-01T00:00:00Z", "value": 1}
    r = post(server, {"readings": [good, {"point": str(demo_points[4]), **reading}]})
    if fragment is None:  # a missing value is an explicit null reading: accepted
        assert r.status_code == 200, r.text
        return
    assert r.status_code == 400, r.text
    problem = r.json()
    assert problem["code"] == "bad_readings" and problem["problems"][0]["index"] == 1
    assert fragment in problem["problems"][0]["problem"]


def test_one_point_spelt_two_ways_is_one_point(
    server: Server, demo_points: list[uuid.UUID], fresh_time: datetime
) -> None:
    """A batch may name a point in upper and lower case: one point, newest wins."""
    p = demo_points[6]
    later = fresh_time + timedelta(seconds=1)
    r = post(
        server,
        {
            "readings": [
                {"point": str(p).upper(), "time": later.isoformat(), "value": 2.5},
                {"point": str(p), "time": fresh_time.isoformat(), "value": 1.5},
            ]
        },
    )
    assert r.status_code == 200 and r.json()["inserted"] == 2, r.text
    latest = httpx.get(f"{server.url}/points/{p}/latest", headers=server.auth("read")).json()
    assert latest["value"] == 2.5, latest


def test_nan_is_refused(server: Server, demo_points: list[uuid.UUID]) -> None:
    reading = f'{{"point": "{demo_points[0]}", "time": "2026-01-01T00:00:00Z", "value": NaN}}'
    body = f'{{"readings": [{reading}]}}'
    r = httpx.post(
        f"{server.url}/telemetry",
        content=body,
        headers={**server.auth("write"), "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and "NaN" in r.json()["detail"]


def test_oversized_batch_is_413(
    server: Server, demo_points: list[uuid.UUID], fresh_time: datetime
) -> None:
    settings = server.platform.settings
    old = settings.telemetry_max_batch
    settings.telemetry_max_batch = 3
    try:
        r = post(server, batch(demo_points[0], fresh_time, [1, 2, 3, 4]))
    finally:
        settings.telemetry_max_batch = old
    assert r.status_code == 413 and r.json()["code"] == "batch_too_large"


def test_writes_need_write_scope(
    server: Server, demo_points: list[uuid.UUID], fresh_time: datetime
) -> None:
    assert post(server, batch(demo_points[0], fresh_time, [1]), scope="read").status_code == 403


def test_csv_by_label_and_many_points_in_one_query(
    server: Server, fresh_time: datetime, graph_iri: str
) -> None:
    # Three points with labels no other test uses (the demo building is loaded more than
    # once in a session, so its labels are not unique).
    tag = uuid.uuid4().hex[:8]
    names = [f"csv{tag}{i}" for i in range(3)]
    model = "".join(vav_model(n, ts=str(uuid.uuid4())) for n in names)
    server.platform.models.ingest(graph=graph_iri, data=model.encode(), fmt=RdfFormat.TURTLE)
    refs = [server.platform.points.by_label(f"{n} zone air temperature")[0] for n in names]
    header = "timestamp," + ",".join(f'"{r.label}"' for r in refs)
    rows = [
        f"{(fresh_time + timedelta(minutes=15 * i)).isoformat()},{i},{i * 2},{i * 3}"
        for i in range(4)
    ]
    r = httpx.post(
        f"{server.url}/telemetry",
        content="\n".join([header, *rows]) + "\n",
        headers={**server.auth("write"), "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 12
    q = httpx.post(
        f"{server.url}/telemetry/query",
        json={
            "points": [str(r.uuid) for r in refs],
            "start": fresh_time.isoformat(),
            "end": (fresh_time + timedelta(hours=1)).isoformat(),
            "bucket": "1h",
            "agg": "sum",
            "latest": True,
        },
        headers=server.auth("read"),
    )
    assert q.status_code == 200, q.text
    sums = [q.json()["points"][str(r.uuid)]["readings"][0]["value"] for r in refs]
    assert sums == [6, 12, 18]
    assert q.json()["points"][str(refs[2].uuid)]["latest"]["value"] == 9


def test_unknown_point_in_path_is_404(server: Server) -> None:
    r = httpx.get(f"{server.url}/points/{uuid.uuid4()}/latest", headers=server.auth("read"))
    assert r.status_code == 404 and r.json()["code"] == "unknown_point"
