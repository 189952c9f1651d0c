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
    return schema


@lru_cache(maxsize=1024)
def _validator(text: str) -> Draft202012Validator:
    return Draft202012Validator(json.loads(text))


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
    size = len(json.dumps(value, separators=(",", ":")))
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
