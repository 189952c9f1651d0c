"""Trio: one record per block, blocks separated by ``---`` lines.

Each line is ``name`` (a marker) or ``name: value``. A value is a Zinc scalar when the whole
rest of the line parses as one; otherwise it is taken as a plain string. ``name:`` with
nothing after it starts a multi-line string made of the following indented lines.
"""

from __future__ import annotations

from ingest.haystack.values import MARKER, Grid, HaystackParseError, HValue, Record
from ingest.haystack.zinc import _ID, ZincReader, parse_scalar


def _value(text: str, line_no: int) -> HValue:
    text = text.strip()
    if text.startswith("Zinc:"):
        raise HaystackParseError("nested Zinc grids in Trio are not supported", line=line_no)
    try:
        return parse_scalar(text)
    except HaystackParseError:
        if text.startswith(('"', "`", "[", "{")):
            raise
        return text


def parse_trio(text: str) -> Grid:
    rows: list[Record] = []
    current: Record = {}
    lines = text.lstrip("\ufeff").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        stripped = line.strip()
        if stripped.startswith("---"):
            if current:
                rows.append(current)
            current = {}
            continue
        if not stripped or stripped.startswith("//"):
            continue
        m = _ID.match(line)
        if not m:
            raise HaystackParseError(f"expected a tag name in {line!r}", line=i)
        name, rest = m.group(0), line[m.end() :].strip()
        if not rest:
            current[name] = MARKER
            continue
        if not rest.startswith(":"):
            raise HaystackParseError(f"expected ':' after {name!r}", line=i)
        rest = rest[1:].strip()
        if rest:
            current[name] = _value(rest, i)
            continue
        body: list[str] = []  # multi-line string: the indented lines that follow
        while i < len(lines) and (lines[i].startswith((" ", "\t")) or not lines[i].strip()):
            body.append(lines[i])
            i += 1
        while body and not body[-1].strip():
            body.pop()
        indent = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
        current[name] = "\n".join(b[indent:] for b in body)
    if current:
        rows.append(current)
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    return Grid(meta={"ver": "3.0"}, columns=list(columns), rows=rows)


__all__ = ["parse_trio", "ZincReader"]
