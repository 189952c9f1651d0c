"""What ``twingraph ingest haystack PATH`` does: parse -> map -> validate + commit.

``app.cli`` owns the command line; this function owns the work, so it can be tested with a
real platform and no terminal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from app.graph.models import IngestResult
from app.platform import Platform
from ingest.haystack.job import haystack_to_triples
from ingest.haystack.mapping import MappingResult
from ingest.haystack.readers import Format, read_records


@dataclass(slots=True)
class HaystackIngestSummary:
    graph: str
    records: int
    mapping: MappingResult
    ingest: IngestResult
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "graph": self.graph,
            "records": self.records,
            "mapping": self.mapping.summary(),
            "ingest": self.ingest.as_dict(),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


def default_graph(path: Path) -> str:
    return f"urn:twingraph:model:{path.stem.split('.')[0]}"


def run_haystack_ingest(
    platform: Platform,
    path: Path,
    graph: str | None,
    base: str | None,
    console: Console,
    *,
    fmt: Format | None = None,
    merge: bool = False,
) -> HaystackIngestSummary:
    """Parse a Haystack grid file, map it to Brick/REC and commit it (validated).

    Raises ``ValidationFailedError`` (nothing stored) when the mapped model breaks the shapes
    and ``HaystackParseError`` (a ValueError, with line/column) when the file does not parse.
    """
    target = graph or default_graph(path)
    timings: dict[str, float] = {}
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task(f"parse {path.name}", total=3)
        t0 = time.perf_counter()
        records = read_records(path, fmt)
        timings["parse"] = time.perf_counter() - t0
        progress.advance(task)
        progress.update(task, description=f"map {len(records)} records")
        t0 = time.perf_counter()
        mapping = haystack_to_triples(records, base=base)
        timings["map"] = time.perf_counter() - t0
        progress.advance(task)
        progress.update(task, description=f"validate + commit <{target}>")
        t0 = time.perf_counter()
        result = platform.models.ingest_triples(
            graph=target,
            triples=mapping.triples,
            mode="merge" if merge else "replace",
            author="cli",
        )
        timings["ingest"] = time.perf_counter() - t0
        progress.advance(task)
    summary = HaystackIngestSummary(target, len(records), mapping, result, timings)
    _print_summary(summary, console)
    return summary


def _print_summary(summary: HaystackIngestSummary, console: Console) -> None:
    m = summary.mapping
    mapped = ", ".join(f"{n} {k}" for k, n in sorted(m.counts.items()))
    console.print(
        f"<{summary.graph}>: {summary.records} records -> {mapped}; "
        f"{len(m.triples)} triples, graph now {summary.ingest.graph_triples}"
    )
    console.print(
        f"points typed specifically: {m.points_specific}/{m.points_total} "
        f"({m.point_share:.1%}); generic: {len(m.generic)}; not mapped: {len(m.unclassified)}; "
        f"history points: {len(m.his_points)}"
    )
    for u in m.unclassified[:20]:
        console.print(f"[yellow]not mapped[/yellow] {u.id} ({u.dis}): {u.reason}")
    if len(m.unclassified) > 20:
        console.print(f"... and {len(m.unclassified) - 20} more not mapped")
    for unit, n in sorted(m.unknown_units.items()):
        console.print(f"[yellow]unit without QUDT equivalent[/yellow] {unit!r} on {n} point(s)")
