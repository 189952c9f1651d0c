"""Haystack filters (``site or equip``, ``point and equipRef->ahu``, ``temp > 70°F``).

Grammar (docHaystack/Filters)::

    filter := and ("or" and)*          and  := term ("and" term)*
    term   := "(" filter ")" | "not" path | path | path op value | "^" symbol
    path   := name ("->" name)*        op   := == != < <= > >=

Values are Zinc scalars (``"str"``, ``@ref``, ``72°F``, ``2024-01-01``, ``^sym``, `` `uri` ``)
plus ``true``/``false``. ``^sym`` matches entities carrying the marker ``sym``: without the
defs namespace loaded, subtype reasoning (``^ahu`` for an ``rtu``) is not done.

A comparison holds only when the tag is present and of the same kind as the value (numbers
with different units never compare), so ``a != x`` implies ``a`` is present.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from app.errors import InvalidInputError
from ingest.haystack.values import (
    NA,
    DateTime,
    HaystackParseError,
    HValue,
    Number,
    Record,
    Ref,
    Remove,
    Symbol,
    Uri,
)
from ingest.haystack.zinc import ZincReader

_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OPS = ("==", "!=", "<=", ">=", "<", ">")
MAX_FILTER_LENGTH = 4096

Resolve = Callable[[str], Record | None]


@dataclass(frozen=True, slots=True)
class Has:
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Missing:
    path: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Cmp:
    path: tuple[str, ...]
    op: str
    value: HValue


@dataclass(frozen=True, slots=True)
class IsA:
    symbol: str


@dataclass(frozen=True, slots=True)
class And:
    parts: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    parts: tuple[Node, ...]


Node = Has | Missing | Cmp | IsA | And | Or


class FilterSyntaxError(InvalidInputError):
    code = "haystack_filter_syntax"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, message: str) -> FilterSyntaxError:
        return FilterSyntaxError(f"Bad filter {self.text!r}: {message} at position {self.pos + 1}")

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek_name(self) -> str | None:
        self.skip()
        m = _NAME.match(self.text, self.pos)
        return m.group(0) if m else None

    def keyword(self, word: str) -> bool:
        if self.peek_name() == word:
            self.pos += len(word)
            return True
        return False

    def parse(self) -> Node:
        node = self.or_()
        self.skip()
        if self.pos < len(self.text):
            raise self.error(f"unexpected {self.text[self.pos : self.pos + 10]!r}")
        return node

    def or_(self) -> Node:
        parts = [self.and_()]
        while self.keyword("or"):
            parts.append(self.and_())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def and_(self) -> Node:
        parts = [self.term()]
        while self.keyword("and"):
            parts.append(self.term())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def term(self) -> Node:
        self.skip()
        if self.text.startswith("(", self.pos):
            self.pos += 1
            node = self.or_()
            self.skip()
            if not self.text.startswith(")", self.pos):
                raise self.error("expected ')'")
            self.pos += 1
            return node
        if self.text.startswith("^", self.pos):
            self.pos += 1
            m = _NAME.match(self.text, self.pos)
            if not m:
                raise self.error("expected a symbol after '^'")
            self.pos = m.end()
            return IsA(m.group(0))
        if self.keyword("not"):
            return Missing(self.path())
        path = self.path()
        self.skip()
        for op in _OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return Cmp(path, op, self.value())
        return Has(path)

    def path(self) -> tuple[str, ...]:
        names: list[str] = []
        while True:
            name = self.peek_name()
            if name is None or (not names and name in ("and", "or", "not")):
                raise self.error("expected a tag name")
            self.pos += len(name)
            names.append(name)
            if not self.text.startswith("->", self.pos):
                return tuple(names)
            self.pos += 2

    def value(self) -> HValue:
        self.skip()
        if self.keyword("true"):
            return True
        if self.keyword("false"):
            return False
        reader = ZincReader(self.text, self.pos)
        try:
            val = reader.value()
        except (HaystackParseError, ValueError) as exc:
            raise self.error(f"bad value ({exc})") from None
        if isinstance(val, list | dict) or val is None:
            raise self.error("a filter value must be a scalar")
        self.pos = reader.pos
        return val


def parse_filter(text: str) -> Node:
    if not text.strip():
        raise FilterSyntaxError("The filter is empty")
    if len(text) > MAX_FILTER_LENGTH:
        raise FilterSyntaxError(f"The filter is longer than {MAX_FILTER_LENGTH} characters")
    return _Parser(text).parse()


def tag_names(node: Node) -> set[str]:
    """Every tag name a filter mentions (first path segments and ``^`` symbols)."""
    if isinstance(node, And | Or):
        out: set[str] = set()
        for p in node.parts:
            out |= tag_names(p)
        return out
    if isinstance(node, IsA):
        return {node.symbol}
    return {node.path[0]}


def _get(record: Record, path: tuple[str, ...], resolve: Resolve) -> HValue:
    current: Record | None = record
    for i, name in enumerate(path):
        if current is None:
            return None
        val = current.get(name)
        if i == len(path) - 1:
            return None if isinstance(val, Remove) else val
        current = resolve(val.id) if isinstance(val, Ref) else None
    return None


def _compare(a: HValue, op: str, b: HValue) -> bool:
    if a is None or isinstance(a, NA | Remove):
        return False
    if op == "==":
        return _same(a, b)
    if op == "!=":
        return not _same(a, b)
    key_a, key_b = _ordered(a), _ordered(b)
    if key_a is None or key_b is None or type(key_a) is not type(key_b):
        return False
    if isinstance(a, Number) and isinstance(b, Number) and a.unit and b.unit and a.unit != b.unit:
        return False
    match op:
        case "<":
            return bool(key_a < key_b)  # type: ignore[operator]
        case "<=":
            return bool(key_a <= key_b)  # type: ignore[operator]
        case ">":
            return bool(key_a > key_b)  # type: ignore[operator]
        case _:
            return bool(key_a >= key_b)  # type: ignore[operator]


def _same(a: HValue, b: HValue) -> bool:
    if isinstance(a, Ref) and isinstance(b, Ref):
        return a.id == b.id
    if isinstance(a, Number) and isinstance(b, Number):
        return a.value == b.value and (a.unit == b.unit or not a.unit or not b.unit)
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    return a == b


def _ordered(v: HValue) -> object:
    if isinstance(v, bool):
        return None
    if isinstance(v, Number):
        return float(v.value)
    if isinstance(v, str):
        return v
    if isinstance(v, Uri | Symbol):
        return v.value
    if isinstance(v, DateTime):
        return v.value
    if isinstance(v, dt.date | dt.time):
        return v
    if isinstance(v, Ref):
        return v.id
    return None


def matches(node: Node, record: Record, resolve: Resolve) -> bool:
    if isinstance(node, Has):
        return _get(record, node.path, resolve) is not None
    if isinstance(node, Missing):
        return _get(record, node.path, resolve) is None
    if isinstance(node, Cmp):
        return _compare(_get(record, node.path, resolve), node.op, node.value)
    if isinstance(node, IsA):
        return node.symbol in record and record[node.symbol] is not None
    if isinstance(node, And):
        return all(matches(p, record, resolve) for p in node.parts)
    return any(matches(p, record, resolve) for p in node.parts)
