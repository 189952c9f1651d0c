"""Typed spellings of ``strawberry.field``/``mutation``/``subscription`` with a description.

With keyword arguments only, strawberry's decorators are untyped for mypy (no plugin is
configured); these keep the decorated resolver's own signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import strawberry

F = TypeVar("F", bound=Callable[..., Any])


def field(description: str, *, graphql_type: Any = None) -> Callable[[F], F]:
    """``graphql_type`` declares the field's type when the resolver's annotation cannot
    (a resolver that answers now or later, see Point.latest)."""
    return cast(
        Callable[[F], F], strawberry.field(description=description, graphql_type=graphql_type)
    )


def mutation(description: str) -> Callable[[F], F]:
    return cast(Callable[[F], F], strawberry.mutation(description=description))


def subscription(description: str) -> Callable[[F], F]:
    return cast(Callable[[F], F], strawberry.subscription(description=description))
