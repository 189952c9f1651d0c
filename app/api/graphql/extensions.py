"""Schema extensions: access control, a cost guard, error codes and masking, round trips.

- ``AccessGuard`` checks the caller's scope once per operation (read for queries and
  subscriptions, write for mutations; anonymous reads when the settings allow them), and
  estimates the operation's cost before it runs. A refused subscription ends with one
  result carrying the error.
- ``ErrorCodes`` is strawberry's ``MaskErrors`` that keeps our domain errors (AppError)
  visible and gives every error ``extensions.code``; anything else is logged with a
  request id and answered with a generic message.
- ``RoundTripsExtension`` reports ``extensions.roundTrips = {sparql, sql}``; on a
  websocket, where one context serves every operation, it first gives each operation
  fresh loaders and counters.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
)
from strawberry.extensions import MaskErrors, SchemaExtension

from app.api.deps import check_scope
from app.api.graphql.context import GraphQLContext
from app.errors import AppError, InvalidInputError
from app.security.tokens import Scope

log = logging.getLogger("twingraph.api")

#: Fields that return connections: their children count ``first`` times (100 unless given).
CONNECTION_FIELDS = frozenset(
    {"entities", "sites", "buildings", "levels", "spaces", "equipment", "points"}
)
#: Guessed fan-out of list fields without a ``first`` (relationships, readings).
LIST_FANOUT = 10
DEFAULT_FIRST = 100
#: A connection's own wrappers: the list they hold is already counted by ``first``.
PASSTHROUGH_FIELDS = frozenset({"nodes", "edges", "node", "pageInfo"})


def _int_arg(node: FieldNode, name: str, variables: Mapping[str, Any]) -> int | None:
    for arg in node.arguments or ():
        if arg.name.value != name:
            continue
        if isinstance(arg.value, IntValueNode):
            return int(arg.value.value)
        if isinstance(arg.value, VariableNode):
            value = variables.get(arg.value.name.value)
            return value if isinstance(value, int) else None
    return None


def estimate_cost(
    selection: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    variables: Mapping[str, Any],
    multiplier: int = 1,
    seen: frozenset[str] = frozenset(),
) -> int:
    """Fields the operation would resolve: each field counts once per parent it is asked
    for; a connection's children count ``first`` times, other lists ``LIST_FANOUT`` times
    (a deliberately rough upper bound, not a prediction)."""
    if selection is None:
        return 0
    total = 0
    for sel in selection.selections:
        if isinstance(sel, FieldNode):
            total += multiplier
            if sel.selection_set is None:
                continue
            first = 1 if sel.name.value in PASSTHROUGH_FIELDS else _int_arg(sel, "first", variables)
            if first is None:
                first = DEFAULT_FIRST if sel.name.value in CONNECTION_FIELDS else LIST_FANOUT
            total += estimate_cost(
                sel.selection_set, fragments, variables, multiplier * first, seen
            )
        elif isinstance(sel, InlineFragmentNode):
            total += estimate_cost(sel.selection_set, fragments, variables, multiplier, seen)
        elif isinstance(sel, FragmentSpreadNode):
            name = sel.name.value
            if name in fragments and name not in seen:
                total += estimate_cost(
                    fragments[name].selection_set, fragments, variables, multiplier, seen | {name}
                )
    return total


def _introspection_only(operation: OperationDefinitionNode) -> bool:
    return all(
        isinstance(sel, FieldNode) and sel.name.value.startswith("__")
        for sel in operation.selection_set.selections
    )


class AccessGuard(SchemaExtension):
    def __init__(self, *, max_cost: int) -> None:
        self.max_cost = max_cost

    def on_execute(self) -> Iterator[None]:
        try:
            self._check()
        except AppError as exc:
            if self._subscription:
                # Streams ignore a preset result; strawberry turns an error raised here
                # into the stream's one (masked, coded) result instead.
                raise
            self.execution_context.result = ExecutionResult(
                data=None, errors=[GraphQLError(exc.detail, original_error=exc)]
            )
        yield

    _subscription = False

    def _check(self) -> None:
        ctx = self.execution_context
        context: GraphQLContext = ctx.context
        document = ctx.graphql_document
        assert document is not None
        operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if ctx.operation_name:
            operations = [o for o in operations if o.name and o.name.value == ctx.operation_name]
        if not operations:
            return  # graphql-core reports the missing operation itself
        operation = operations[0]
        self._subscription = operation.operation is OperationType.SUBSCRIPTION
        if operation.operation is OperationType.QUERY and _introspection_only(operation):
            return
        needed = Scope.WRITE if operation.operation is OperationType.MUTATION else Scope.READ
        if context.auth_error is not None:
            raise context.auth_error
        check_scope(context.platform, context.principal, needed)
        fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }
        cost = estimate_cost(operation.selection_set, fragments, ctx.variables or {})
        if cost > self.max_cost:
            raise InvalidInputError(
                f"The operation's estimated cost is {cost}; the limit is {self.max_cost}. "
                "Ask for fewer items (first:) or fewer nested lists.",
                code="query_too_costly",
                cost=cost,
            )


def _code(error: GraphQLError) -> str:
    original = error.original_error
    if isinstance(original, AppError):
        return original.code
    message = error.message
    if "exceeds maximum operation depth" in message:
        return "query_too_deep"
    if message.startswith("Syntax Error"):
        return "graphql_parse_failed"
    if error.path is None:
        return "graphql_validation_failed"
    return "invalid_input"


def _is_internal(error: GraphQLError) -> bool:
    original = error.original_error
    return original is not None and not isinstance(original, AppError | GraphQLError)


class ErrorCodes(MaskErrors):
    def __init__(self) -> None:
        super().__init__(should_mask_error=_is_internal)

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        request_id = uuid.uuid4().hex[:12]
        log.error(
            "unhandled GraphQL error at %s, request id %s",
            error.path,
            request_id,
            exc_info=error.original_error,
        )
        return GraphQLError(
            message=f"An unexpected error occurred; it was logged with request id {request_id}.",
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            extensions={"code": "internal_error", "requestId": request_id},
        )

    def _process_errors(self, errors: list[GraphQLError]) -> list[GraphQLError]:
        out = super()._process_errors(errors)
        for error in out:
            if not error.extensions or "code" not in error.extensions:
                extensions = dict(error.extensions or {})
                extensions["code"] = _code(error)
                original = error.original_error
                if isinstance(original, AppError):
                    extensions["status"] = original.status
                error.extensions = extensions
        return out


class RoundTripsExtension(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        context = self.execution_context.context
        if isinstance(context, GraphQLContext) and context.long_lived:
            context.refresh()
        yield

    def get_results(self) -> dict[str, Any]:
        context = self.execution_context.context
        if isinstance(context, GraphQLContext):
            return {"roundTrips": context.trips.as_dict()}
        return {}
