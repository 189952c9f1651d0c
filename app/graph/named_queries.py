"""Named SPARQL queries: ``queries/<group>/<name>.rq`` files with a comment header.

A file starts with header lines, before the query::

    # title: Points of an equipment
    # description: Every point of the given equipment with its class, label, unit and id.
    # params: equipment (iri, required), limit (integer, default=100)
    # returns: point, class, label, unit, timeseries_id

``title``, ``params`` and ``returns`` are required, ``description`` is optional; other
``# key:`` lines in the header are errors (they are usually typos), free ``#`` comments are not.
``params`` is ``none`` or a comma-separated list of ``name (kind[, required|optional][,
default=value])`` with ``kind`` one of :data:`PARAM_KINDS`; a default cannot contain ``,`` or
``)``. A parameter is bound from outside as the SPARQL variable ``?name`` (substitution or
``VALUES``), so it must occur in the query and must not be assigned by ``BIND``/``AS``. An optional
parameter without a default stays unbound when not given, so the query must make sense either way.
Shipped queries also project their parameters: pyoxigraph's ``substitutions`` refuses a variable
that is not in the ``SELECT`` clause. Bind with :func:`with_values` where speed matters.
The key of a query is its path below the root without ``.rq`` (``points/of_equipment``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from pyoxigraph import Literal, NamedNode

from app.domain.iris import STANDARD_PREFIXES, XSD
from app.errors import InvalidInputError

PARAM_KINDS: Final = ("iri", "string", "integer", "decimal", "boolean")

_HEADER_KEYS: Final = ("title", "description", "params", "returns")
_REQUIRED_KEYS: Final = ("title", "params", "returns")
_HEADER_LINE = re.compile(r"^#\s*([a-z_]+)\s*:\s*(.*?)\s*$")
_PARAM = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\s*\(([^()]*)\)$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:")
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_DECIMAL = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)$")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")

#: What a bound parameter becomes; it is substituted for the variable ``?<name>``.
Term = NamedNode | Literal


@dataclass(frozen=True, slots=True)
class QueryParam:
    name: str
    kind: str
    required: bool = False
    #: the raw (string) default, converted like a caller's value when used
    default: str | None = None


@dataclass(frozen=True, slots=True)
class NamedQuery:
    key: str
    title: str
    description: str
    params: list[QueryParam] = field(default_factory=list)
    returns: list[str] = field(default_factory=list)
    text: str = ""

    def param(self, name: str) -> QueryParam | None:
        return next((p for p in self.params if p.name == name), None)


def load_named_queries(root: Path) -> dict[str, NamedQuery]:
    """Every ``*.rq`` below ``root`` by key, sorted; ``ValueError`` naming the file if malformed."""
    queries: dict[str, NamedQuery] = {}
    for path in sorted(root.rglob("*.rq")):
        key = path.relative_to(root).with_suffix("").as_posix()
        queries[key] = parse_named_query(key, path.read_text(encoding="utf-8"), source=str(path))
    return queries


def parse_named_query(key: str, text: str, *, source: str | None = None) -> NamedQuery:
    """One query from its text; ``source`` (default: ``key``) names it in error messages."""
    where = source or key
    header: dict[str, str] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        if not stripped.startswith("#"):
            break
        match = _HEADER_LINE.match(stripped)
        if match is None:
            continue  # a free comment
        name, value = match.groups()
        if name not in _HEADER_KEYS:
            raise ValueError(
                f"{where}: unknown header key {name!r} (expected one of {', '.join(_HEADER_KEYS)})"
            )
        if name in header:
            raise ValueError(f"{where}: header key {name!r} given twice")
        header[name] = value
    missing = [k for k in _REQUIRED_KEYS if not header.get(k)]
    if missing:
        raise ValueError(
            f"{where}: header is missing {', '.join(missing)} "
            "(write '# params: none' for a query without parameters)"
        )
    params = _parse_params(header["params"], where)
    returns = [name.strip().lstrip("?") for name in header["returns"].split(",")]
    if not all(_NAME.match(name) for name in returns):
        raise ValueError(f"{where}: '# returns:' must be a comma-separated list of variable names")
    for param in params:
        if not re.search(rf"[?$]{param.name}\b", text):
            raise ValueError(f"{where}: parameter {param.name!r} is not used as ?{param.name}")
        if re.search(rf"\bAS\s+[?$]{param.name}\b", text, flags=re.IGNORECASE):
            raise ValueError(
                f"{where}: parameter {param.name!r} is assigned in the query "
                "(BIND/AS); it must only be bound from outside"
            )
    return NamedQuery(
        key=key,
        title=header["title"],
        description=header.get("description", ""),
        params=params,
        returns=returns,
        text=text,
    )


def _parse_params(spec: str, where: str) -> list[QueryParam]:
    if spec.strip().lower() == "none":
        return []
    params: list[QueryParam] = []
    for item in _split_top_level(spec):
        match = _PARAM.match(item)
        if match is None:
            raise ValueError(
                f"{where}: bad parameter {item!r}; expected "
                "'name (kind[, required|optional][, default=value])'"
            )
        name, inner = match.groups()
        options = [o.strip() for o in inner.split(",")]
        kind, flags = options[0], options[1:]
        if kind not in PARAM_KINDS:
            raise ValueError(
                f"{where}: parameter {name!r} has unknown kind {kind!r} "
                f"(expected one of {', '.join(PARAM_KINDS)})"
            )
        required, default = False, None
        for flag in flags:
            if flag == "required":
                required = True
            elif flag == "optional":
                required = False
            elif flag.startswith("default="):
                default = flag.removeprefix("default=").strip()
            else:
                raise ValueError(f"{where}: parameter {name!r} has unknown option {flag!r}")
        if required and default is not None:
            raise ValueError(f"{where}: parameter {name!r} is required and has a default")
        if any(p.name == name for p in params):
            raise ValueError(f"{where}: parameter {name!r} declared twice")
        param = QueryParam(name=name, kind=kind, required=required, default=default)
        if default is not None:
            try:
                convert_param(param, default)
            except InvalidInputError as exc:
                raise ValueError(f"{where}: bad default: {exc.detail}") from exc
        params.append(param)
    return params


def _split_top_level(spec: str) -> list[str]:
    """Split on commas outside parentheses."""
    items: list[str] = []
    current: list[str] = []
    depth = 0
    for char in spec:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            items.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    items.append("".join(current).strip())
    return items


def bind_params(q: NamedQuery, raw: Mapping[str, str]) -> dict[str, Term]:
    """Caller's string values -> RDF terms by parameter name, defaults applied.

    Optional parameters without a value or default are left out (they stay unbound).
    Raises ``InvalidInputError`` naming the parameter on unknown, missing or malformed values.
    """
    unknown = sorted(set(raw) - {p.name for p in q.params})
    if unknown:
        allowed = ", ".join(p.name for p in q.params) or "none"
        raise InvalidInputError(
            f"query {q.key!r} has no parameter {', '.join(map(repr, unknown))} "
            f"(parameters: {allowed})",
            param=unknown[0],
        )
    bound: dict[str, Term] = {}
    for param in q.params:
        value = raw.get(param.name)
        if value is None:
            if param.required:
                raise InvalidInputError(
                    f"query {q.key!r} needs parameter {param.name!r} ({param.kind})",
                    param=param.name,
                )
            if param.default is None:
                continue
            value = param.default
        bound[param.name] = convert_param(param, value)
    return bound


def convert_param(param: QueryParam, value: str) -> Term:
    """One raw value as the term for ``param``; ``InvalidInputError`` if it does not fit."""

    def bad(why: str) -> InvalidInputError:
        return InvalidInputError(f"parameter {param.name!r}: {why}", param=param.name)

    text = value.strip()
    if param.kind == "iri":
        return _to_iri(text, bad)
    if param.kind == "string":
        return Literal(value)
    if param.kind == "integer":
        if not _INTEGER.match(text):
            raise bad(f"{value!r} is not an integer")
        return Literal(str(int(text)), datatype=NamedNode(XSD + "integer"))
    if param.kind == "decimal":
        try:
            number = Decimal(text)
        except InvalidOperation:
            number = Decimal("NaN")
        if not number.is_finite() or not (_DECIMAL.match(text) or _INTEGER.match(text)):
            raise bad(f"{value!r} is not a decimal number")
        return Literal(format(number, "f"), datatype=NamedNode(XSD + "decimal"))
    if param.kind == "boolean":
        lowered = text.lower()
        if lowered not in _TRUE + _FALSE:
            raise bad(f"{value!r} is not a boolean (true/false)")
        return Literal("true" if lowered in _TRUE else "false", datatype=NamedNode(XSD + "boolean"))
    raise bad(f"unsupported kind {param.kind!r}")  # unreachable: kinds are checked on load


def _to_iri(text: str, bad: Callable[[str], InvalidInputError]) -> NamedNode:
    """An absolute IRI, ``<...>`` or a prefixed name with a standard prefix (``brick:AHU``)."""
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    prefix, sep, local = text.partition(":")
    if sep and prefix in STANDARD_PREFIXES and not local.startswith("//"):
        text = STANDARD_PREFIXES[prefix] + local
    if not _SCHEME.match(text):
        raise bad(f"{text!r} is not an absolute IRI")
    try:
        return NamedNode(text)
    except ValueError as exc:
        raise bad(f"{text!r} is not a valid IRI ({exc})") from exc


_BODY_START = re.compile(r"\b(?:WHERE|ASK)\s*\{", re.IGNORECASE)


def with_values(q: NamedQuery, bound: Mapping[str, Term]) -> str:
    """The query text with each bound parameter as ``VALUES ?name { term }`` opening its WHERE.

    Prefer this to engine-side substitution: Oxigraph 0.5 plans a substituted variable as
    unbound, so a ``brick:hasPart*`` path starting from it walks the whole graph (10 s on 500k
    triples where the ``VALUES`` form takes 1 ms).
    """
    if not bound:
        return q.text
    body = _query_body_offset(q.text)
    match = _BODY_START.search(q.text, body)
    if match is None:
        raise ValueError(f"{q.key}: no 'WHERE {{' (or 'ASK {{') to bind parameters into")
    values = "".join(f"\n  VALUES ?{name} {{ {term} }}" for name, term in bound.items())
    return q.text[: match.end()] + values + q.text[match.end() :]


def _query_body_offset(text: str) -> int:
    """Offset of the first line that is neither blank nor a ``#`` comment."""
    offset = 0
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            return offset
        offset += len(line)
    return offset
