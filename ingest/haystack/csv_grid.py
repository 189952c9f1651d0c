"""Haystack CSV grids (https://project-haystack.org/doc/docHaystack/Csv).

After CSV unquoting a cell is read as: empty -> absent; ``✓`` -> marker; ``@id dis`` -> ref
(the display name unquoted, as shaystack writes it); anything that parses as one Zinc scalar
-> that value; anything else -> a string. Writers quote a string Zinc would misread
(``"M"``, ``"12"``) as a Zinc string, which the same rule reads back as that string.
"""

from __future__ import annotations

import csv
import io

from ingest.haystack.values import MARKER, Grid, HaystackParseError, HValue, Record, Ref
from ingest.haystack.zinc import _REF, parse_scalar


def parse_cell(cell: str) -> HValue:
    if cell == "":
        return None
    if cell == "\u2713":
        return MARKER
    if cell.startswith("@"):
        m = _REF.match(cell)
        if m:
            dis = cell[m.end() :].strip()
            if dis.startswith('"') and dis.endswith('"') and len(dis) >= 2:
                dis = dis[1:-1]
            return Ref(m.group(1), dis or None)
    try:
        return parse_scalar(cell)
    except (HaystackParseError, ValueError):
        return cell


def parse_csv(text: str) -> Grid:
    reader = csv.reader(io.StringIO(text.lstrip("\ufeff")))
    try:
        header = next(reader)
    except StopIteration as exc:
        raise HaystackParseError("empty CSV grid") from exc
    columns = [h.strip() for h in header]
    rows: list[Record] = []
    for line_no, cells in enumerate(reader, start=2):
        if not any(cells):
            continue
        if len(cells) > len(columns):
            raise HaystackParseError(f"{len(cells)} cells for {len(columns)} columns", line=line_no)
        row: Record = {}
        for name, cell in zip(columns, cells, strict=False):
            val = parse_cell(cell)
            if val is not None:
                row[name] = val
        rows.append(row)
    return Grid(meta={"ver": "3.0"}, columns=columns, rows=rows)
