"""A graphql-core execution context that does less per field on large result lists.

A dashboard query over 1,000 points executes the same few fields thousands of times, and
graphql-core spends most of a request on that bookkeeping. Two shortcuts, each producing
exactly what the standard executor produces:

* **Arguments once per field node.** graphql-core coerces a field's arguments every time
  it runs the field (``readings(start:, end:, bucket: "1h", agg: AVG)`` on every point).
  Within one operation the same node always has the same arguments (variables are fixed),
  so they are coerced once and reused; a coercion error is raised each time, as before.
* **Plain leaf objects in one step.** An object whose selected fields are all plain
  attributes holding scalars (``latest { time value }``) is completed by reading the
  attributes and serializing them, instead of running the field machinery per attribute.
  Anything unusual for an object (a null in a non-null field, a serializer error) falls
  back to the standard path, which reports it as it always does.

Strawberry runs schema extensions' ``resolve`` hooks inside field resolvers; a leaf done
in one step skips them, so ``build_schema`` refuses extensions that define one.

Both overrides follow graphql-core 3.3's executor (``execute_field`` is its own code with
the argument lookup changed); tests compare the results with the standard executor's.
"""

from __future__ import annotations

from typing import Any

from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
)
from graphql.execution.values import get_argument_values
from graphql.pyutils import Path, Undefined
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

#: A leaf plan: (response name, attribute name, serializer, nullable) per field.
LeafPlan = tuple[tuple[str, str, Any, bool], ...]

_NOT_PLAIN: LeafPlan = ()


def _plain_attribute(field_def: GraphQLField) -> str | None:
    """The Python attribute a strawberry field reads, if it is nothing more than that."""
    definition = field_def.extensions.get("strawberry-definition")
    if definition is None:
        return None
    if (
        definition.base_resolver is not None
        or definition.extensions
        or definition.permission_classes
        or definition.directives
    ):
        return None
    name = definition.python_name
    return name if isinstance(name, str) else None


class FastExecutionContext(StrawberryGraphQLCoreExecutionContext):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._arguments: dict[int, tuple[Any, dict[str, Any]]] = {}
        self._leaf_plans: dict[int, tuple[Any, LeafPlan]] = {}

    # -- arguments once per field node ---------------------------------------------------------

    def _argument_values(self, field_def: GraphQLField, details: Any) -> dict[str, Any]:
        node = details.node
        if details.fragment_variable_values is not None:  # experimental fragment arguments
            return get_argument_values(
                field_def,
                node,
                self.variable_values,
                details.fragment_variable_values,
                self.hide_suggestions,
            )
        cached = self._arguments.get(id(node))
        if cached is not None and cached[0] is node:
            return cached[1]
        args = get_argument_values(
            field_def, node, self.variable_values, None, self.hide_suggestions
        )
        self._arguments[id(node)] = (node, args)  # the node is kept: its id stays unique
        return args

    def execute_field(  # noqa: C901 - graphql-core's own structure, kept for comparison
        self,
        parent_type: GraphQLObjectType,
        source: Any,
        field_details_list: Any,
        path: Path,
        position_context: Any,
    ) -> Any:
        first_field_details = field_details_list[0]
        first_field_node = first_field_details.node
        field_def = self.schema.get_field(parent_type, first_field_node.name.value)
        if not field_def:
            return Undefined

        return_type = field_def.type
        resolve_fn = field_def.resolve or self.field_resolver
        if self.middleware_manager:
            resolve_fn = self.middleware_manager.get_field_resolver(resolve_fn)

        info = self.build_resolve_info(
            field_def, [d.node for d in field_details_list], parent_type, path
        )
        try:
            args = (
                self._argument_values(field_def, first_field_details)
                if field_def.args or first_field_node.arguments
                else {}
            )
            result = resolve_fn(source, info, **args)
            if self.is_awaitable(result):
                return self.complete_awaitable_value(
                    return_type, field_details_list, info, path, result, position_context
                )
            completed = self.complete_value(
                return_type, field_details_list, info, path, result, position_context
            )
            if self.is_awaitable(completed):

                async def await_completed() -> Any:
                    try:
                        return await completed
                    except Exception as raw_error:
                        self.handle_field_error(raw_error, return_type, field_details_list, path)
                        return None

                return await_completed()
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, field_details_list, path)
            return None
        return completed

    # -- plain leaf objects in one step --------------------------------------------------------

    def _leaf_plan(self, parent_type: GraphQLObjectType, grouped_field_set: Any) -> LeafPlan:
        cached = self._leaf_plans.get(id(grouped_field_set))
        if cached is not None and cached[0] is grouped_field_set:
            return cached[1]
        plan: list[tuple[str, str, Any, bool]] = []
        for response_name, field_details_list in grouped_field_set.items():
            node = field_details_list[0].node
            field_def = parent_type.fields.get(node.name.value)
            attribute = _plain_attribute(field_def) if field_def is not None else None
            if (
                field_def is None
                or attribute is None
                or field_def.args
                or node.arguments
                or node.selection_set is not None
                or any(d.name.value not in ("skip", "include") for d in node.directives or ())
            ):
                plan = []
                break
            nullable = True
            leaf: GraphQLOutputType = field_def.type
            if isinstance(leaf, GraphQLNonNull):
                nullable, leaf = False, leaf.of_type
            if not isinstance(leaf, GraphQLScalarType | GraphQLEnumType):
                plan = []
                break
            plan.append((response_name, attribute, leaf.serialize, nullable))
        found = tuple(plan) if plan else _NOT_PLAIN
        self._leaf_plans[id(grouped_field_set)] = (grouped_field_set, found)
        return found

    def execute_collected_subfields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path,
        grouped_field_set: Any,
        new_defer_usages: Any,
        position_context: Any,
    ) -> Any:
        if not new_defer_usages and position_context is None:
            plan = self._leaf_plan(parent_type, grouped_field_set)
            if plan:
                out: dict[str, Any] = {}
                try:
                    for response_name, attribute, serialize, nullable in plan:
                        value = getattr(source_value, attribute)
                        if value is None:
                            if not nullable:
                                break  # the standard path reports the null
                            out[response_name] = None
                            continue
                        serialized = serialize(value)
                        if serialized is Undefined or serialized is None:
                            break
                        out[response_name] = serialized
                    else:
                        return out
                except Exception:  # noqa: BLE001 - the standard path reports it
                    pass
        return super().execute_collected_subfields(
            parent_type,
            source_value,
            path,
            grouped_field_set,
            new_defer_usages,
            position_context,
        )
