"""JSON Schema per property (and per command input), enforced on write.

Schemas are JSON Schema 2020-12 documents (a Thing Description's data schemas are a
subset). A schema is checked when it is set; values are checked on every desired and
reported write, so a twin never holds a value its schema refuses.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from app.errors import InvalidInputError
from app.twins.model import MAX_VALUE_BYTES


def check_schema(what: str, schema: Any) -> dict[str, Any]:
    if not isinstance(schema, dict):
        raise InvalidInputError(f"The schema of {what} must be a JSON object", code="bad_schema")
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        raise InvalidInputError(
            f"The schema of {what} is not a valid JSON Schema: {exc.message}", code="bad_schema"
        ) from None
    # Every $ref must resolve inside the schema: nothing is ever fetched (no URLs, no
    # files), and a dangling reference is refused now rather than failing every write.
    base = "urn:twingraph:schema"
    resolver = Registry().with_resource(base, DRAFT202012.create_resource(schema)).resolver(base)
    for ref in _refs(schema):
        try:
            resolver.lookup(ref)
        except Unresolvable:
            raise InvalidInputError(
                f"The schema of {what} refers to {ref!r}, which is not defined inside it "
                "(schemas are self-contained: no remote or file references)",
                code="bad_schema",
            ) from None
    return schema


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [v for k, v in node.items() if k in ("$ref", "$dynamicRef") and isinstance(v, str)]
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


@lru_cache(maxsize=1024)
def _validator(text: str) -> Draft202012Validator:
    # An empty registry: references resolve within the schema only, never by retrieval.
    return Draft202012Validator(json.loads(text), registry=Registry())


def violations(schema: Mapping[str, Any], value: Any) -> list[str]:
    validator = _validator(json.dumps(schema, sort_keys=True))
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    return [
        (f"at {'/'.join(map(str, e.absolute_path))}: " if e.absolute_path else "") + e.message
        for e in errors[:10]
    ]


def check_value(
    what: str, value: Any, schema: Mapping[str, Any] | None, *, code: str = "schema_violation"
) -> None:
    """Raise InvalidInputError when ``value`` is too large or breaks ``schema``."""
    try:
        # PostgreSQL's jsonb refuses NaN, infinities and NUL characters: so do we, as 400s.
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (ValueError, TypeError) as exc:
        raise InvalidInputError(
            f"The value of {what} is not plain JSON: {exc}", code="bad_value"
        ) from None
    if "\\u0000" in text:
        raise InvalidInputError(
            f"The value of {what} contains a NUL character", code="bad_value"
        )
    size = len(text)
    if size > MAX_VALUE_BYTES:
        raise InvalidInputError(
            f"The value of {what} is {size} bytes of JSON; the limit is {MAX_VALUE_BYTES}",
            code="value_too_large",
        )
    if schema is None:
        return
    found = violations(schema, value)
    if found:
        raise InvalidInputError(
            f"The value of {what} does not match its schema: {'; '.join(found)}",
            code=code,
            property=what,
            violations=found,
        )
