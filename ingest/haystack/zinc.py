"""Zinc (Haystack 3) grids and scalars; also the scalar syntax Trio and CSV cells reuse."""

from __future__ import annotations

import datetime as dt
import math
import re

from ingest.haystack.values import (
    MARKER,
    NA_VALUE,
    REMOVE,
    Bin,
    Coord,
    DateTime,
    Grid,
    HaystackParseError,
    HValue,
    Number,
    Record,
    Ref,
    Symbol,
    Uri,
    XStr,
)

_DATETIME = re.compile(
    r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(Z|[+-]\d{2}:?\d{2})?"
    r"(?: ([A-Z][A-Za-z0-9_\-+/]*))?"
)
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?")
_NUMBER = re.compile(r"-?\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?")
_UNIT = re.compile(r"[A-Za-z%_/$\u0080-\uffff]+")
_REF = re.compile(r"@([A-Za-z0-9_:\-.~]+)")
_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DIGITS = "0123456789"
_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\", "$": "$"}
_KEYWORDS: dict[str, HValue] = {
    "N": None,
    "M": MARKER,
    "R": REMOVE,
    "NA": NA_VALUE,
    "T": True,
    "F": False,
    "NaN": Number(math.nan),
    "INF": Number(math.inf),
}


def parse_datetime(date: str, time: str, offset: str | None, tz: str | None) -> DateTime:
    if "." in time:  # Python takes at most microseconds
        head, frac = time.split(".", 1)
        time = f"{head}.{frac[:6].ljust(6, '0')}"
    text = f"{date}T{time}{offset or ''}"
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        if tz == "UTC":
            value = value.replace(tzinfo=dt.UTC)
        else:
            raise ValueError(f"date-time {text!r} has no UTC offset")
    return DateTime(value, tz)


def parse_time(text: str) -> dt.time:
    if "." in text:
        head, frac = text.split(".", 1)
        text = f"{head}.{frac[:6].ljust(6, '0')}"
    return dt.time.fromisoformat(text)


class ZincReader:
    """A cursor over Zinc text; ``value()`` reads one scalar or collection."""

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text = text
        self.pos = pos

    # -- helpers -------------------------------------------------------------------------

    def error(self, message: str) -> HaystackParseError:
        line = self.text.count("\n", 0, self.pos) + 1
        column = self.pos - (self.text.rfind("\n", 0, self.pos) + 1) + 1
        return HaystackParseError(message, line=line, column=column)

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos : self.pos + n]

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def skip_blank(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t\r\n":
            self.pos += 1

    def expect(self, s: str) -> None:
        if not self.text.startswith(s, self.pos):
            raise self.error(f"expected {s!r}")
        self.pos += len(s)

    def match(self, pattern: re.Pattern[str]) -> re.Match[str] | None:
        m = pattern.match(self.text, self.pos)
        if m:
            self.pos = m.end()
        return m

    # -- values --------------------------------------------------------------------------

    def string(self, quote: str = '"') -> str:
        self.expect(quote)
        out: list[str] = []
        text = self.text
        while True:
            if self.pos >= len(text) or text[self.pos] == "\n":
                raise self.error("unterminated string")
            c = text[self.pos]
            if c == quote:
                self.pos += 1
                return "".join(out)
            if c == "\\":
                e = text[self.pos + 1 : self.pos + 2]
                if e == "u":
                    out.append(chr(int(text[self.pos + 2 : self.pos + 6], 16)))
                    self.pos += 6
                    continue
                if quote == "`" and e in ":/?#[]@\\&=;`":
                    out.append(("\\" + e) if e not in "`\\" else e)
                elif e in _ESCAPES:
                    out.append(_ESCAPES[e])
                else:
                    raise self.error(f"bad escape \\{e}")
                self.pos += 2
                continue
            out.append(c)
            self.pos += 1

    def value(self) -> HValue:
        c = self.peek()
        if c == "":
            raise self.error("expected a value")
        if c == '"':
            return self.string()
        if c == "`":
            return Uri(self.string("`"))
        if c == "@":
            m = self.match(_REF)
            if not m:
                raise self.error("bad ref")
            dis = None
            if self.text.startswith(' "', self.pos):
                self.pos += 1
                dis = self.string()
            return Ref(m.group(1), dis)
        if c == "^":
            self.pos += 1
            m = self.match(_ID)
            if not m:
                raise self.error("bad symbol")
            return Symbol(m.group(0))
        if c == "[":
            return self.list_()
        if c == "{":
            return self.dict_("{", "}")
        if self.text.startswith("<<", self.pos):
            self.pos += 2
            grid = self.grid(nested=True)
            self.skip_blank()
            self.expect(">>")
            return grid
        if c in _DIGITS or (c == "-" and self.peek(2)[1:] in _DIGITS and self.peek(2)[1:]):
            return self.number_or_temporal()
        if self.text.startswith("-INF", self.pos):
            self.pos += 4
            return Number(-math.inf)
        m = self.match(_ID)
        if not m:
            raise self.error(f"unexpected {c!r}")
        name = m.group(0)
        if self.peek() == "(":
            return self.call(name)
        if name in _KEYWORDS:
            return _KEYWORDS[name]
        self.pos = m.start()
        raise self.error(f"unknown keyword {name!r}")

    def call(self, name: str) -> HValue:
        self.expect("(")
        if name == "C":
            self.skip_spaces()
            lat = self.match(_NUMBER)
            self.skip_spaces()
            self.expect(",")
            self.skip_spaces()
            lng = self.match(_NUMBER)
            self.skip_spaces()
            self.expect(")")
            if not lat or not lng:
                raise self.error("bad coord")
            return Coord(float(lat.group(0)), float(lng.group(0)))
        s = self.string()
        self.expect(")")
        return Bin(s) if name == "Bin" else XStr(name, s)

    def number_or_temporal(self) -> HValue:
        start = self.pos
        if m := self.match(_DATETIME):
            try:
                return parse_datetime(m.group(1), m.group(2), m.group(3), m.group(4))
            except ValueError as exc:
                self.pos = start
                raise self.error(str(exc)) from exc
        if m := self.match(_DATE):
            return dt.date.fromisoformat(m.group(0))
        if m := self.match(_TIME):
            return parse_time(m.group(0))
        m = self.match(_NUMBER)
        assert m is not None
        unit = self.match(_UNIT)
        return Number(float(m.group(0).replace("_", "")), unit.group(0) if unit else None)

    def list_(self) -> list[HValue]:
        self.expect("[")
        out: list[HValue] = []
        while True:
            self.skip_blank()
            if self.peek() == "]":
                self.pos += 1
                return out
            out.append(self.value())
            self.skip_blank()
            if self.peek() == ",":
                self.pos += 1

    def dict_(self, open_: str, close: str) -> Record:
        self.expect(open_)
        out: Record = {}
        while True:
            self.skip_blank()
            if self.peek() == close:
                self.pos += 1
                return out
            name, val = self.tag()
            out[name] = val
            self.skip_blank()
            if self.peek() == ",":
                self.pos += 1

    def tag(self) -> tuple[str, HValue]:
        m = self.match(_ID)
        if not m:
            raise self.error("expected a tag name")
        self.skip_spaces()
        if self.peek() == ":":
            self.pos += 1
            self.skip_spaces()
            return m.group(0), self.value()
        return m.group(0), MARKER

    def meta(self) -> Record:
        """Space-separated ``name`` / ``name:value`` pairs up to the end of the line."""
        out: Record = {}
        while True:
            self.skip_spaces()
            if self.at_end() or self.peek() in "\r\n,>":
                return out
            name, val = self.tag()
            out[name] = val

    def newline(self) -> None:
        self.skip_spaces()
        if self.peek() == "\r":
            self.pos += 1
        if not self.at_end() and self.peek() != ">":
            self.expect("\n")

    def grid(self, *, nested: bool = False) -> Grid:
        self.skip_blank()
        self.expect("ver:")
        version = self.string()
        meta = self.meta()
        meta = {"ver": version, **meta}
        self.newline()
        columns: list[str] = []
        column_meta: dict[str, Record] = {}
        while True:
            self.skip_spaces()
            m = self.match(_ID)
            if not m:
                raise self.error("expected a column name")
            columns.append(m.group(0))
            cmeta = self.meta()
            if cmeta:
                column_meta[m.group(0)] = cmeta
            self.skip_spaces()
            if self.peek() == ",":
                self.pos += 1
                continue
            break
        self.newline()
        rows: list[Record] = []
        while not self.at_end():
            if self.peek() in "\r\n":  # a blank line ends the grid
                break
            if nested and self.text.startswith(">>", self.pos):
                break
            rows.append(self.row(columns))
            self.newline()
        return Grid(meta=meta, columns=columns, rows=rows, column_meta=column_meta)

    def row(self, columns: list[str]) -> Record:
        out: Record = {}
        for i, col in enumerate(columns):
            self.skip_spaces()
            if i:
                if self.peek() != ",":
                    break  # short row: the remaining cells are empty
                self.pos += 1
                self.skip_spaces()
            if self.peek() in (",", "\r", "\n", "") or self.text.startswith(">>", self.pos):
                continue
            val = self.value()
            if val is not None:
                out[col] = val
        return out


def parse_zinc(text: str) -> Grid:
    reader = ZincReader(text.lstrip("\ufeff"))
    return reader.grid()


def parse_scalar(text: str) -> HValue:
    """One Zinc scalar that must span the whole of ``text`` (after trimming)."""
    reader = ZincReader(text.strip())
    val = reader.value()
    if not reader.at_end():
        raise reader.error("trailing characters after the value")
    return val
