"""Looking ahead from a connection field at what its nodes will be asked for.

A page of entities is fetched in one query; knowing the fields its nodes select lets the
page's resolver describe them only as far as needed (``LIGHT_FIELDS``) and fetch every
point's telemetry at once (Point.latest/readings then answer synchronously).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from strawberry.schema.types.base_scalars import DateTimeDefinition
from strawberry.types.nodes import FragmentSpread, InlineFragment, SelectedField, Selection

from app.api.graphql.context import Info
from app.api.graphql.loaders import RangeParams
from app.api.graphql.types import AggregateFunction, range_params
from app.errors import AppError
from app.graph.entities import RELATIONS

#: Node fields a light description (kinds and time series ids, see EntityService.find)
#: answers: the rest of the record is not read, or read through loaders.
LIGHT_FIELDS = frozenset(
    {
        "__typename",
        "id",
        "timeseriesId",
        "timeseriesUuid",
        "latest",
        "readings",
        "classes",
        "types",
        "points",
        "aggregate",
        *RELATIONS,
    }
)


def _included(sel: Selection) -> bool:
    """@skip/@include, as strawberry hands them over (variables resolved)."""
    skip = sel.directives.get("skip")
    if skip is not None and skip.get("if") is True:
        return False
    include = sel.directives.get("include")
    return not (include is not None and include.get("if") is False)


def _fields(selections: list[Selection]) -> list[SelectedField]:
    """The fields of a selection set, fragments expanded whatever their type condition
    (more fields than will run at worst: a look-ahead only needs an upper bound)."""
    out: list[SelectedField] = []
    for sel in selections:
        if not _included(sel):
            continue
        if isinstance(sel, SelectedField):
            out.append(sel)
        elif isinstance(sel, FragmentSpread | InlineFragment):
            out += _fields(sel.selections)
    return out


def node_fields(info: Info) -> list[SelectedField]:
    """The fields a connection's nodes select, through ``nodes`` and ``edges { node }``."""
    out: list[SelectedField] = []
    for field in _fields(info.selected_fields):
        for child in _fields(field.selections):
            if child.name == "nodes":
                out += _fields(child.selections)
            elif child.name == "edges":
                for edge in _fields(child.selections):
                    if edge.name == "node":
                        out += _fields(edge.selections)
    return out


def _datetime(value: Any) -> datetime:
    """A variable arrives parsed, a literal as written (parsed as strawberry would)."""
    if isinstance(value, datetime):
        return value
    parsed = DateTimeDefinition.parse_value(value)  # type: ignore[misc]
    assert isinstance(parsed, datetime)
    return parsed


def _agg(value: Any) -> AggregateFunction:
    if value is None:
        return AggregateFunction.AVG
    if isinstance(value, AggregateFunction):
        return value
    return AggregateFunction[value]  # a literal: the enum value's name


def readings_params(fields: list[SelectedField], default_end: datetime) -> list[RangeParams]:
    """The argument sets of the ``readings`` fields among ``fields`` (``end`` defaulting
    as the resolver defaults it). Arguments the resolver would reject are left out: it
    reports them itself. A set that differs from the resolver's own is only a wasted
    query: each field looks its own key up."""
    out: list[RangeParams] = []
    for field in fields:
        if field.name != "readings":
            continue
        args = field.arguments
        try:
            limit = args.get("limit")
            out.append(
                range_params(
                    _datetime(args["start"]),
                    default_end if args.get("end") is None else _datetime(args["end"]),
                    args.get("bucket"),
                    _agg(args.get("agg")),
                    1000 if limit is None else int(limit),
                )
            )
        except (AppError, KeyError, TypeError, ValueError, AssertionError):
            continue
    return out
