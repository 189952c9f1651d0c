"""GraphQL over real HTTP with the `gql` client: a running server, real stores, real readings."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import uvicorn
from gql import Client, GraphQLRequest
from gql.transport.exceptions import TransportQueryError
from gql.transport.httpx import HTTPXTransport
from graphql import ExecutionResult

from app.api.graphql import graphql_router
from app.main import create_app
from ingest.demo_building import generate_building
from tests.conftest import Server, free_port
from tests.factories import broken_unit_model, vav_model

GRAPH = "urn:twingraph:model:graphql-building"
#: A window no other test writes to; each store mode has its own building (own UUIDs).
T0 = datetime(2095, 3, 1, tzinfo=UTC)
ZAT = "brick:Zone_Air_Temperature_Sensor"


@pytest.fixture(scope="module")
def url(server: Server) -> Iterator[str]:
    """``/graphql`` of the shared server, or of the same platform with the router mounted
    (until ``create_app`` mounts it itself)."""
    probe = httpx.post(f"{server.url}/graphql", json={"query": "{ __typename }"}, timeout=10)
    if probe.status_code != 404:
        yield f"{server.url}/graphql"
        return
    app = create_app(platform=server.platform)
    app.include_router(graphql_router())
    port = free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started
    yield f"http://127.0.0.1:{port}/graphql"
    srv.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def base(server: Server, store_mode: str) -> str:
    """The demo building (3 levels x 4 zones) under a base of its own, loaded once."""
    prefix = f"urn:twingraph:gql-{store_mode}:"
    server.platform.models.ingest_triples(
        graph=GRAPH,
        triples=generate_building(floors=3, vavs_per_floor=4, base=prefix, seed=41),
    )
    return prefix


def client(url: str, server: Server, scope: str | None = "read") -> Client:
    headers = server.auth(scope) if scope else {}
    return Client(transport=HTTPXTransport(url=url, headers=headers, timeout=60))


def run(
    url: str,
    server: Server,
    query: str,
    variables: dict[str, Any] | None = None,
    scope: str | None = "read",
) -> ExecutionResult:
    request = GraphQLRequest(query, variable_values=variables)
    with client(url, server, scope) as session:
        result = session.execute(request, get_execution_result=True)
    assert isinstance(result, ExecutionResult)
    return result


def errors_of(
    url: str, server: Server, query: str, scope: str | None = "read", **v: Any
) -> list[dict[str, Any]]:
    with pytest.raises(TransportQueryError) as info:
        run(url, server, query, v or None, scope)
    errors: list[dict[str, Any]] = info.value.errors or []
    assert errors
    return errors


DASHBOARD = """
query Dashboard($level: ID!, $start: DateTime!, $end: DateTime!, $first: Int!) {
  points(type: "brick:Zone_Air_Temperature_Sensor", within: $level, first: $first) {
    nodes {
      id label unit timeseriesUuid
      latest { time value }
      hourly: readings(start: $start, end: $end, bucket: "1h", agg: AVG) { time value }
      isPointOf { id label }
    }
    pageInfo { hasNextPage endCursor }
  }
  level: entity(id: $level) {
    __typename
    ... on Level {
      levelNumber
      aggregate(pointType: "brick:Zone_Air_Temperature_Sensor", start: $start, end: $end) {
        time value points
      }
    }
  }
}
"""


@pytest.fixture(scope="module")
def level3_readings(url: str, server: Server, base: str) -> dict[str, list[float]]:
    """Readings every 10 minutes for two hours for each zone temperature sensor on level 3,
    written with the writeReadings mutation; returns the values per point IRI."""
    found = run(
        url,
        server,
        'query($l: ID!) { points(type: "brick:Zone_Air_Temperature_Sensor", within: $l) '
        "{ nodes { id timeseriesUuid } } }",
        {"l": base + "bldg/L03"},
    )
    assert found.data is not None
    nodes = found.data["points"]["nodes"]
    assert len(nodes) == 4
    values: dict[str, list[float]] = {}
    batch = []
    for i, node in enumerate(nodes):
        series = [20.0 + i + step * 0.5 for step in range(12)]
        values[node["id"]] = series
        batch += [
            {
                "point": node["timeseriesUuid"],
                "time": (T0 + timedelta(minutes=10 * step)).isoformat(),
                "value": v,
            }
            for step, v in enumerate(series)
        ]
    written = run(
        url,
        server,
        "mutation($r: [ReadingInput!]!) { writeReadings(readings: $r) { accepted inserted } }",
        {"r": batch},
        scope="write",
    )
    assert written.data == {"writeReadings": {"accepted": 48, "inserted": 48}}
    return values


def test_dashboard_query_joins_points_latest_and_hourly_average(
    url: str, server: Server, base: str, level3_readings: dict[str, list[float]]
) -> None:
    variables = {
        "level": base + "bldg/L03",
        "start": T0.isoformat(),
        "end": (T0 + timedelta(hours=2)).isoformat(),
        "first": 100,
    }
    result = run(url, server, DASHBOARD, variables)
    assert result.errors is None and result.data is not None
    nodes = result.data["points"]["nodes"]
    assert {n["id"] for n in nodes} == set(level3_readings)
    for node in nodes:
        series = level3_readings[node["id"]]
        assert node["unit"] == "unit:DEG_C"
        assert node["latest"]["value"] == series[-1]
        assert datetime.fromisoformat(node["latest"]["time"]) == T0 + timedelta(minutes=110)
        assert [b["value"] for b in node["hourly"]] == pytest.approx(
            [sum(series[:6]) / 6, sum(series[6:]) / 6]
        )
        assert node["isPointOf"][0]["label"].startswith("VAV-3.")
    level = result.data["level"]
    assert level["__typename"] == "Level" and level["levelNumber"] == 3
    per_point_first_hour = [sum(s[:6]) / 6 for s in level3_readings.values()]
    assert [b["points"] for b in level["aggregate"]] == [4, 4]
    assert level["aggregate"][0]["value"] == pytest.approx(sum(per_point_first_hour) / 4)
    assert result.extensions is not None
    assert set(result.extensions["roundTrips"]) == {"sparql", "sql"}


POINTS = """
query($within: ID!, $start: DateTime!, $end: DateTime!, $first: Int!) {
  points(type: "brick:Zone_Air_Temperature_Sensor", within: $within, first: $first) {
    nodes {
      id latest { value }
      readings(start: $start, end: $end, bucket: "1h") { value }
      isPointOf { label }
    }
  }
}
"""
LEVELS = """
query($within: ID!, $start: DateTime!, $end: DateTime!, $first: Int!) {
  levels(within: $within, first: $first) {
    nodes { levelNumber aggregate(pointType: "brick:Zone_Air_Temperature_Sensor", start: $start, end: $end) { value } }
  }
}
"""


@pytest.mark.parametrize(
    ("query", "sizes", "expected"),
    [
        # find+describe, isPointOf relations, their descriptions | latest, hourly ranges
        (POINTS, (1, 12), {"sparql": 3, "sql": 2}),
        # find+describe, points inside each level, their descriptions | one aggregate
        (LEVELS, (1, 3), {"sparql": 3, "sql": 1}),
    ],
    ids=["points", "levels"],
)
def test_round_trips_do_not_grow_with_the_number_of_points(
    url: str,
    server: Server,
    base: str,
    level3_readings: dict[str, list[float]],
    query: str,
    sizes: tuple[int, int],
    expected: dict[str, int],
) -> None:
    for first in sizes:
        variables = {
            "within": base + "bldg",
            "start": T0.isoformat(),
            "end": (T0 + timedelta(hours=2)).isoformat(),
            "first": first,
        }
        result = run(url, server, query, variables)
        assert result.data is not None
        assert len(next(iter(result.data.values()))["nodes"]) == first
        assert result.extensions is not None
        assert result.extensions["roundTrips"] == expected, first


def test_entities_paging_types_and_relationships_both_ways(
    url: str, server: Server, base: str
) -> None:
    query = """query($b: ID!, $after: String) {
      entities(type: "rec:HVACZone", within: $b, first: 5, after: $after) {
        nodes { id __typename } pageInfo { hasNextPage endCursor }
      }
    }"""
    seen: list[str] = []
    after = None
    for _ in range(5):
        page = run(url, server, query, {"b": base + "bldg", "after": after}).data
        assert page is not None
        seen += [n["id"] for n in page["entities"]["nodes"]]
        assert {n["__typename"] for n in page["entities"]["nodes"]} <= {"Space"}
        if not page["entities"]["pageInfo"]["hasNextPage"]:
            break
        after = page["entities"]["pageInfo"]["endCursor"]
    assert len(seen) == len(set(seen)) == 12

    vav = base + "bldg/L02/vav-01"
    data = run(
        url,
        server,
        """query($id: ID!) { entity(id: $id) {
            __typename types classes label
            isFedBy { id } feeds(type: "rec:HVACZone") { id }
            hasPoint(type: "brick:Zone_Air_Temperature_Sensor") {
              ... on Point { timeseriesId externalReferences { kind timeseriesId } }
            }
            hasLocation { id isPartOf(type: "rec:Level") { ... on Level { levelNumber } } }
        } }""",
        {"id": vav},
    ).data
    assert data is not None
    entity = data["entity"]
    assert entity["__typename"] == "Equipment"
    # The most specific classes: the asserted one and its equivalent (brick:RVAV).
    assert "brick:Variable_Air_Volume_Box_With_Reheat" in entity["types"]
    assert "brick:VAV" not in entity["types"]
    assert "brick:Equipment" in entity["classes"] and "brick:VAV" in entity["classes"]
    # The demo states only `feeds`: isFedBy is read from the other direction.
    assert {e["id"] for e in entity["isFedBy"]} == {
        base + "bldg/ahu-1",
        base + "bldg/plant/boiler-1",
    }
    assert [e["id"] for e in entity["feeds"]] == [base + "bldg/L02/zone-01"]
    point = entity["hasPoint"][0]
    assert point["externalReferences"] == [
        {"kind": "ref:TimeseriesReference", "timeseriesId": point["timeseriesId"]}
    ]
    assert entity["hasLocation"][0]["isPartOf"] == [{"levelNumber": 2}]
    assert run(url, server, '{ entity(id: "urn:nowhere:x") { id } }').data == {"entity": None}


def test_typed_entry_points(url: str, server: Server, base: str) -> None:
    data = run(
        url,
        server,
        """query($b: ID!) {
          sites { nodes { id hasPart { id } } }
          levels(within: $b) { nodes { levelNumber } }
          equipment(type: "brick:AHU", within: $b) { nodes { id label } }
        }""",
        {"b": base + "bldg"},
    ).data
    assert data is not None
    assert base + "site" in {s["id"] for s in data["sites"]["nodes"]}
    assert sorted(n["levelNumber"] for n in data["levels"]["nodes"]) == [1, 2, 3]
    assert sorted(n["label"] for n in data["equipment"]["nodes"]) == ["AHU-1", "AHU-2"]


def test_put_model_then_a_violating_replace_returns_validation_failed(
    url: str, server: Server, graph_iri: str
) -> None:
    put = """mutation($g: String!, $d: String!) { putModel(graph: $g, data: $d) {
        __typename
        ... on ModelUpdated { graph graphTriples }
        ... on ValidationFailed { message violations { focusNode path message severity } }
    } }"""
    ok = run(url, server, put, {"g": graph_iri, "d": vav_model("gq1")}, scope="write").data
    assert ok is not None and ok["putModel"]["__typename"] == "ModelUpdated"
    assert ok["putModel"]["graphTriples"] > 5
    found = run(url, server, '{ entity(id: "urn:ex:gq1") { __typename label } }').data
    assert found == {"entity": {"__typename": "Equipment", "label": "VAV gq1"}}

    bad = run(url, server, put, {"g": graph_iri, "d": broken_unit_model("gq2")}, scope="write")
    assert bad.data is not None
    result = bad.data["putModel"]
    assert result["__typename"] == "ValidationFailed"
    assert any(v["focusNode"] == "urn:ex:gq2-zat" for v in result["violations"])
    assert all(v["severity"] == "Violation" and v["message"] for v in result["violations"])
    # Nothing was stored: the first model is still there.
    assert run(url, server, '{ entity(id: "urn:ex:gq2") { id } }').data == {"entity": None}
    assert run(url, server, '{ entity(id: "urn:ex:gq1") { id } }').data is not None

    delete = "mutation($g: String!) { deleteGraph(graph: $g) { graph } }"
    assert run(url, server, delete, {"g": graph_iri}, scope="write").data == {
        "deleteGraph": {"graph": graph_iri}
    }
    assert run(url, server, '{ entity(id: "urn:ex:gq1") { id } }').data == {"entity": None}
    again = errors_of(url, server, delete, scope="write", g=graph_iri)
    assert again[0]["extensions"]["code"] == "graph_not_found"


def test_auth_failures_carry_codes(url: str, server: Server, base: str) -> None:
    query = "{ sites { nodes { id } } }"
    assert errors_of(url, server, query, scope=None)[0]["extensions"]["code"] == "token_required"
    mutation = 'mutation { deleteGraph(graph: "urn:x:y") { graph } }'
    denied = errors_of(url, server, mutation, scope="read")
    assert denied[0]["extensions"]["code"] == "insufficient_scope"
    transport = HTTPXTransport(url=url, headers={"Authorization": "Bearer tg_nope_nope"})
    with Client(transport=transport) as session, pytest.raises(TransportQueryError) as info:
        session.execute(GraphQLRequest(query))
    assert info.value.errors is not None
    assert info.value.errors[0]["extensions"]["code"] == "invalid_token"
    # Introspection alone needs no token (GraphiQL loads the schema before one is set).
    assert run(url, server, "{ __schema { queryType { name } } }", scope=None).data


def test_depth_and_cost_limits(url: str, server: Server, base: str) -> None:
    deep = '{ entity(id: "urn:x:y") { ' + "hasPart { " * 11 + "id" + " }" * 11 + " } }"
    errors = errors_of(url, server, deep)
    assert errors[0]["extensions"]["code"] == "query_too_deep"
    costly = "{ points(first: 5000) { nodes { hasPart { hasPart { hasPart { id } } } } } }"
    assert errors_of(url, server, costly)[0]["extensions"]["code"] == "query_too_costly"
    bad_input = errors_of(url, server, '{ points(type: "not an iri") { nodes { id } } }')
    assert bad_input[0]["extensions"]["code"] == "bad_iri"
    assert bad_input[0]["path"] == ["points"]


#: The benchmark's query (bench/bench_graphql.py, P4): a page of points with their latest
#: value and an hourly average, fetched for the whole page ahead of the fields.
P4 = """
query($start: DateTime!, $end: DateTime!, $first: Int!) {
  points(first: $first) {
    nodes {
      id
      latest { time value }
      avg: readings(start: $start, end: $end, bucket: "1h", agg: AVG) { value }
    }
  }
}
"""


def test_p4_query_uses_a_bounded_number_of_round_trips(
    url: str, server: Server, base: str, level3_readings: dict[str, list[float]]
) -> None:
    variables = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=2)).isoformat()}
    for first in (1, 50, 500):
        result = run(url, server, P4, {**variables, "first": first})
        assert result.data is not None and result.extensions is not None
        assert len(result.data["points"]["nodes"]) <= first
        # One query finds and describes the page; latest and the averages: one SQL each.
        assert result.extensions["roundTrips"] == {"sparql": 1, "sql": 2}, first


def test_page_telemetry_matches_the_readings_however_it_is_reached(
    url: str, server: Server, base: str, level3_readings: dict[str, list[float]]
) -> None:
    """Prefetched for a page (variables or literals, aliases, fragments, edges) or loaded
    for points reached through relationships: the same answers, bounded round trips."""
    end = T0 + timedelta(hours=2)
    expected = {
        iri: (series[-1], [sum(series[:6]) / 6, sum(series[6:]) / 6])
        for iri, series in level3_readings.items()
    }
    literal = f"""{{
      points(type: "{ZAT}", within: "{base}bldg/L03") {{
        edges {{ node {{ ...T }} }}
      }}
    }}
    fragment T on Point {{
      id latest {{ value }}
      h: readings(start: "{T0.isoformat()}", end: "{end.isoformat()}", bucket: "1h") {{ value }}
      raw: readings(start: "{T0.isoformat()}", end: "{end.isoformat()}", limit: 2) {{ value }}
    }}"""
    result = run(url, server, literal)
    assert result.data is not None and result.extensions is not None
    nodes = [e["node"] for e in result.data["points"]["edges"]]
    assert {n["id"] for n in nodes} == set(expected)
    for n in nodes:
        latest, hourly = expected[n["id"]]
        assert n["latest"]["value"] == latest
        assert [b["value"] for b in n["h"]] == pytest.approx(hourly)
        assert [r["value"] for r in n["raw"]] == level3_readings[n["id"]][:2]
    assert result.extensions["roundTrips"] == {"sparql": 1, "sql": 3}

    fields = (
        'id ... on Point { latest { value } readings(start: $s, end: $e, bucket: "1h") { value } }'
    )
    through_entities = f"""query($l: ID!, $s: DateTime!, $e: DateTime!) {{
      entities(type: "{ZAT}", within: $l) {{ nodes {{ {fields} }} }}
    }}"""
    nested = f"""query($l: ID!, $s: DateTime!, $e: DateTime!) {{
      equipment(type: "brick:VAV", within: $l) {{
        nodes {{ hasPoint(type: "{ZAT}") {{ {fields} }} }}
      }}
    }}"""
    variables = {"l": base + "bldg/L03", "s": T0.isoformat(), "e": end.isoformat()}
    for query, trips in [
        # find+describe | latest, hourly ranges (fetched ahead for the page)
        (through_entities, {"sparql": 1, "sql": 2}),
        # find+describe, hasPoint relations, their classes (type:), their descriptions |
        # the loaders' batches
        (nested, {"sparql": 4, "sql": 2}),
    ]:
        result = run(url, server, query, variables)
        assert result.data is not None and result.extensions is not None
        nodes = next(iter(result.data.values()))["nodes"]
        if "hasPoint" in nodes[0]:
            nodes = [p for e in nodes for p in e["hasPoint"]]
        assert {n["id"] for n in nodes} == set(expected)
        for n in nodes:
            latest, hourly = expected[n["id"]]
            assert n["latest"]["value"] == latest
            assert [b["value"] for b in n["readings"]] == pytest.approx(hourly)
        assert result.extensions["roundTrips"] == trips


def test_bad_readings_arguments_are_reported_per_field(url: str, server: Server, base: str) -> None:
    query = f"""{{ points(type: "{ZAT}", within: "{base}bldg/L03") {{ nodes {{
      readings(start: "2095-03-01T00:00:00", end: "2095-03-01T01:00:00") {{ value }}
    }} }} }}"""
    errors = errors_of(url, server, query)
    # The first failing field nulls the (non-null) list: graphql-core reports that one.
    assert [e["extensions"]["code"] for e in errors] == ["bad_time"]
    assert errors[0]["path"][:2] == ["points", "nodes"] and errors[0]["path"][3] == "readings"
