"""FastExecutionContext answers exactly what graphql-core's standard executor answers.

The same operations run through two schemas that differ only in their execution context,
against the shared platform and its demo building, with readings written for a few points:
data and errors (messages, paths, codes) must be equal, including the cases the shortcuts
hand back to the standard path (a bad argument, a null where the schema forbids one).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.api.graphql.context import GraphQLContext
from app.api.graphql.execution import FastExecutionContext
from app.api.graphql.schema import build_schema
from app.domain.telemetry import Reading
from app.platform import Platform
from app.security.tokens import Principal, Scope
from tests.conftest import Server

T0 = datetime(2032, 3, 4, 10, tzinfo=UTC)

QUERIES: list[tuple[str, dict[str, Any]]] = [
    (
        """query($s: DateTime!, $e: DateTime!) { points(first: 40) { nodes { __typename id
             latest { time value number }
             hourly: readings(start: $s, end: $e, bucket: "1h", agg: AVG) { time value }
             raw: readings(start: $s, end: $e, limit: 3) { value time }
             ... on Point { again: latest { value } } } pageInfo { hasNextPage endCursor } } }""",
        {"s": T0.isoformat(), "e": (T0 + timedelta(hours=3)).isoformat()},
    ),
    (  # a coercion error on every point: reported per field, by both
        """{ points(first: 5) { nodes { id readings(start: "yesterday") { value } } } }""",
        {},
    ),
    (  # an argument the resolver rejects, and @skip/@include around leaves
        """query($no: Boolean!) { points(first: 5) { nodes { id
             readings(start: "2032-03-04T10:00:00Z", bucket: "-5m") { value }
             latest { time @skip(if: $no) value @include(if: $no) } } } }""",
        {"no": True},
    ),
    (
        """{ equipment(first: 10) { nodes { id types points { id latest { value } } } } }""",
        {},
    ),
]


def _schema(context_class: type[StrawberryGraphQLCoreExecutionContext]) -> strawberry.Schema:
    schema = build_schema()
    schema.execution_context_class = context_class
    return schema


def _run(
    schema: strawberry.Schema, platform: Platform, query: str, variables: dict[str, Any]
) -> tuple[Any, list[dict[str, Any]]]:
    context = GraphQLContext(platform, Principal("t", Scope.READ, "test"))
    result = asyncio.run(
        schema.execute(query, variable_values=variables, context_value=context)
    )
    errors = sorted(
        (
            {"message": e.message, "path": e.path, "code": (e.extensions or {}).get("code")}
            for e in result.errors or ()
        ),
        key=repr,
    )
    return result.data, errors


@pytest.fixture(scope="module")
def with_readings(server: Server) -> Iterator[Platform]:
    """The shared platform, with readings for the first points the queries list."""
    platform = server.platform
    assert platform.telemetry is not None
    found = asyncio.run(
        build_schema().execute(
            "{ points(first: 40) { nodes { timeseriesUuid } } }",
            context_value=GraphQLContext(platform, Principal("t", Scope.READ, "test")),
        )
    )
    assert found.data is not None
    uuids = [n["timeseriesUuid"] for n in found.data["points"]["nodes"] if n["timeseriesUuid"]]
    assert len(uuids) >= 10
    platform.telemetry.write(
        readings=[
            Reading(uuid.UUID(u), T0 + timedelta(minutes=20 * k), float(i + k))
            for i, u in enumerate(uuids[:10])
            for k in range(9)
        ]
    )
    yield platform


@pytest.mark.parametrize("index", range(len(QUERIES)))
def test_fast_context_answers_like_the_standard_one(with_readings: Platform, index: int) -> None:
    platform = with_readings
    query, variables = QUERIES[index]
    fast = _run(_schema(FastExecutionContext), platform, query, variables)
    standard = _run(_schema(StrawberryGraphQLCoreExecutionContext), platform, query, variables)
    assert fast == standard
    data, errors = fast
    assert data is not None or errors
    if index == 0:  # the shortcuts ran on real values, not only on nulls
        nodes = data["points"]["nodes"]
        assert any(n["latest"] and n["hourly"] for n in nodes)
    elif index in (1, 2):
        assert errors
    else:
        assert data["equipment"]["nodes"] and not errors


@strawberry.type
class Leaf:
    a: int
    b: str | None


@strawberry.type
class LeafQuery:
    @strawberry.field
    def leaves(self) -> list[Leaf | None]:
        return [
            Leaf(a=1, b="x"),
            Leaf(a=None, b=None),  # type: ignore[arg-type]  # a null in a non-null field
            Leaf(a="two", b="y"),  # type: ignore[arg-type]  # Int cannot serialize it
            Leaf(a=3, b=None),
        ]


def test_leaf_objects_the_shortcut_cannot_complete_fail_as_before() -> None:
    """Nulls in non-null fields and serializer errors: same data, same errors."""
    answers = []
    for context_class in (FastExecutionContext, StrawberryGraphQLCoreExecutionContext):
        schema = strawberry.Schema(query=LeafQuery, execution_context_class=context_class)
        result = schema.execute_sync("{ leaves { a b } }")
        answers.append(
            (result.data, sorted((e.message, tuple(e.path or ())) for e in result.errors or ()))
        )
    assert answers[0] == answers[1]
    data, errors = answers[0]
    assert data == {"leaves": [{"a": 1, "b": "x"}, None, None, {"a": 3, "b": None}]}
    assert {path for _, path in errors} == {("leaves", 1, "a"), ("leaves", 2, "a")}
