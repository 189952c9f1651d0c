"""The GraphQL error and cost rules, without a server."""

from __future__ import annotations

from graphql import GraphQLError, OperationDefinitionNode, parse

from app.api.graphql.extensions import ErrorCodes, estimate_cost
from app.errors import NotFoundError


def test_internal_errors_are_masked_and_domain_errors_keep_their_code() -> None:
    internal = GraphQLError("secret path /etc/x", original_error=RuntimeError("secret"))
    domain = GraphQLError(
        "no such graph", original_error=NotFoundError("x", code="graph_not_found")
    )
    masked, shown = ErrorCodes()._process_errors([internal, domain])
    assert "secret" not in masked.message
    assert masked.extensions is not None and masked.extensions["code"] == "internal_error"
    assert masked.extensions["requestId"] in masked.message
    assert shown.message == "no such graph"
    assert shown.extensions == {"code": "graph_not_found", "status": 404}


def test_validation_errors_get_codes() -> None:
    deep = GraphQLError("'q' exceeds maximum operation depth of 10")
    syntax = GraphQLError("Syntax Error: Unexpected '}'.")
    out = ErrorCodes()._process_errors([deep, syntax])
    assert [e.extensions["code"] for e in out if e.extensions] == [
        "query_too_deep",
        "graphql_parse_failed",
    ]


def _cost(query: str, **variables: object) -> int:
    doc = parse(query)
    op = next(d for d in doc.definitions if isinstance(d, OperationDefinitionNode))
    fragments = {d.name.value: d for d in doc.definitions if hasattr(d, "type_condition")}
    return estimate_cost(op.selection_set, fragments, variables)  # type: ignore[arg-type]


def test_cost_multiplies_by_first_and_list_fan_out() -> None:
    assert _cost("{ points(first: 10) { nodes { id } } }") == 1 + 10 + 10
    assert _cost("query($n: Int) { points(first: $n) { nodes { id } } }", n=2) == 1 + 2 + 2
    assert _cost("{ points { nodes { id } } }") == 1 + 100 + 100
    nested = "{ points(first: 2) { nodes { hasPart { id } } } }"
    assert _cost(nested) == 1 + 2 + 2 + 20
    with_fragment = "{ points(first: 1) { nodes { ...P } } } fragment P on Point { id label }"
    assert _cost(with_fragment) == 1 + 1 + 2
