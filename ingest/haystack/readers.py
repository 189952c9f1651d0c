"""Read a Haystack grid from a file, picking the encoding by extension (and content)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from ingest.haystack.csv_grid import parse_csv
from ingest.haystack.json_formats import parse_json
from ingest.haystack.trio import parse_trio
from ingest.haystack.values import Grid, HaystackParseError, Record
from ingest.haystack.zinc import parse_zinc

Format = Literal["zinc", "json3", "hayson", "trio", "csv"]
FORMATS: tuple[Format, ...] = ("zinc", "json3", "hayson", "trio", "csv")


def guess_format(path: Path, text: str) -> Format | Literal["json"]:
    suffix = path.suffix.lower()
    if suffix == ".zinc":
        return "zinc"
    if suffix == ".trio":
        return "trio"
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "json"
    head = text.lstrip("\ufeff \t\r\n")[:20]
    if head.startswith("ver:"):
        return "zinc"
    if head.startswith(("{", "[")):
        return "json"
    raise HaystackParseError(f"cannot tell the Haystack encoding of {path.name}")


def parse_grid(text: str, fmt: Format | Literal["json"]) -> Grid:
    match fmt:
        case "zinc":
            return parse_zinc(text)
        case "trio":
            return parse_trio(text)
        case "csv":
            return parse_csv(text)
        case "json":
            return parse_json(text)
        case "json3" | "hayson":
            return parse_json(text, fmt)
    raise HaystackParseError(f"unknown Haystack format {fmt!r}")


def read_grid(path: Path, fmt: Format | None = None) -> Grid:
    text = path.read_text(encoding="utf-8")
    return parse_grid(text, fmt or guess_format(path, text))


def read_records(path: Path, fmt: Format | None = None) -> list[Record]:
    return read_grid(path, fmt).rows
