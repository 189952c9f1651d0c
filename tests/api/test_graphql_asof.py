"""Time travel in GraphQL: ``asOf`` answers from the model (and telemetry) as of a moment."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport

from tests.conftest import Server
from tests.factories import vav_model

PUT = "mutation($g: String!, $d: String!) { putModel(graph: $g, data: $d) { __typename } }"
WRITE = "mutation($r: [ReadingInput!]!) { writeReadings(readings: $r) { inserted } }"
VAVS = """query($tag: String!, $at: DateTime) {
  entities(type: "brick:VAV", where: {labelContains: $tag}, asOf: $at) { nodes { id label } }
}"""
AT_T1 = """query($tag: String!, $at: DateTime!, $vav: ID!, $from: DateTime!) {
  points(type: "brick:Zone_Air_Temperature_Sensor", where: {labelContains: $tag}, asOf: $at) {
    nodes { id latest { time value } readings(start: $from) { value } }
  }
  vav: entity(id: $vav, asOf: $at) {
    label
    hasPoint { ... on Point { latest { value } } }
    aggregate(pointType: "brick:Point", start: $from, bucket: "1d") { value points }
  }
  now: entity(id: $vav) { id }
  nowPoints: points(where: {labelContains: $tag}) { nodes { id latest { value } } }
}"""


def run(server: Server, scope: str, query: str, **variables: Any) -> dict[str, Any]:
    transport = HTTPXTransport(url=server.url + "/graphql", headers=server.auth(scope), timeout=60)
    with Client(transport=transport) as session:
        data = session.execute(GraphQLRequest(query, variable_values=variables))
    return data


def test_entities_as_of_each_of_three_revisions(server: Server, graph_iri: str) -> None:
    tag = f"tt{uuid.uuid4().hex[:8]}"
    names = [f"{tag}a", f"{tag}b", f"{tag}c"]
    series = [str(uuid.uuid4()) for _ in names]
    moments = []
    for i, (name, ts) in enumerate(zip(names, series, strict=True)):
        assert run(server, "write", PUT, g=graph_iri, d=vav_model(name, ts=ts)) == {
            "putModel": {"__typename": "ModelUpdated"}
        }
        moments.append(datetime.now(UTC))
        if i == 0:
            # Readings of the first model's point: one before t1, one (much) after it.
            readings = [
                {
                    "point": ts,
                    "time": (moments[0] - timedelta(minutes=1)).isoformat(),
                    "value": 1.0,
                },
                {"point": ts, "time": (moments[0] + timedelta(days=1)).isoformat(), "value": 2.0},
            ]
            assert run(server, "write", WRITE, r=readings) == {"writeReadings": {"inserted": 2}}
    t1, t2, _t3 = moments

    def vavs(at: datetime | None) -> list[str]:
        data = run(server, "read", VAVS, tag=tag, at=at.isoformat() if at else None)
        return [n["id"] for n in data["entities"]["nodes"]]

    assert vavs(t1) == [f"urn:ex:{names[0]}"]
    assert vavs(t2) == [f"urn:ex:{names[1]}"]
    assert vavs(None) == [f"urn:ex:{names[2]}"]

    data = run(
        server,
        "read",
        AT_T1,
        tag=names[0],
        at=t1.isoformat(),
        vav=f"urn:ex:{names[0]}",
        **{"from": (t1 - timedelta(hours=1)).isoformat()},
    )
    (point,) = data["points"]["nodes"]
    assert point["id"] == f"urn:ex:{names[0]}-zat"
    # The newest reading at or before t1, and a window that ends at t1 by default.
    assert point["latest"]["value"] == 1.0
    assert datetime.fromisoformat(point["latest"]["time"]) == t1 - timedelta(minutes=1)
    assert point["readings"] == [{"value": 1.0}]
    vav = data["vav"]
    assert vav["label"] == f"VAV {names[0]}"
    assert vav["hasPoint"] == [{"latest": {"value": 1.0}}]
    assert vav["aggregate"] == [{"value": 1.0, "points": 1}]
    # Today the first model is gone.
    assert data["now"] is None and data["nowPoints"]["nodes"] == []


def test_as_of_needs_a_zone_offset(server: Server) -> None:
    transport = HTTPXTransport(url=server.url + "/graphql", headers=server.auth("read"))
    query = '{ entity(id: "urn:ex:x", asOf: "2026-01-01T00:00:00") { id } }'
    with Client(transport=transport) as session, pytest.raises(TransportQueryError) as info:
        session.execute(GraphQLRequest(query))
    assert info.value.errors is not None
    assert info.value.errors[0]["extensions"]["code"] == "bad_time"
