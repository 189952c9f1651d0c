"""The BACnet ingest job: scan -> classes (guessed, then reviewed) -> triples -> platform.

``ingest.bacnet.cli`` owns the command line and the network; these functions own the work
on a scan, so they run the same on a live scan and on a replayed one, and can be tested
with a real platform and no terminal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from app.errors import UnavailableError, ValidationFailedError
from app.graph.models import IngestResult
from app.platform import Platform
from ingest.bacnet.classify import LOW_CONFIDENCE, Guess, classify
from ingest.bacnet.mapping import BacnetMapping, MappedPoint, PointKey, map_scan
from ingest.bacnet.review import ReviewDecisions, apply_review, read_review, write_review
from ingest.bacnet.scan import Scan

DEFAULT_GRAPH = "urn:twingraph:model:bacnet"


@dataclass(slots=True)
class Prepared:
    """Everything decided before the platform is touched."""

    scan: Scan
    guesses: dict[PointKey, Guess]
    mapping: BacnetMapping
    decisions: ReviewDecisions | None = None
    review_rows: int | None = None
    timings: dict[str, float] = field(default_factory=dict)


def guess_classes(scan: Scan) -> dict[PointKey, Guess]:
    return {(d.instance, o.identifier): classify(o) for d in scan.devices for o in d.points}


def prepare(
    scan: Scan,
    *,
    base: str | None = None,
    apply_review_from: Path | None = None,
    review_to: Path | None = None,
) -> Prepared:
    """Classify, apply a review, write the review file, map. Raises before anything is
    stored when the scan holds no device or the review file is wrong."""
    if not scan.devices:
        raise UnavailableError(
            "the scan holds no BACnet device"
            + (f" (no answer to Who-Is sent to {scan.target})" if scan.target else "")
            + "; nothing stored",
            code="no_devices",
        )
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    guesses = guess_classes(scan)
    timings["classify"] = time.perf_counter() - t0
    decisions = None
    if apply_review_from is not None:
        decisions = read_review(apply_review_from, scan)
        guesses = apply_review(guesses, decisions)
    rows = write_review(review_to, scan, guesses) if review_to is not None else None
    t0 = time.perf_counter()
    mapping = map_scan(
        scan, guesses, base=base, skip=frozenset(decisions.skip) if decisions else frozenset()
    )
    timings["map"] = time.perf_counter() - t0
    return Prepared(scan, guesses, mapping, decisions, rows, timings)


@dataclass(slots=True)
class BacnetIngestSummary:
    graph: str
    prepared: Prepared
    ingest: IngestResult | None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def mapping(self) -> BacnetMapping:
        return self.prepared.mapping

    def as_dict(self) -> dict[str, object]:
        p = self.prepared
        return {
            "graph": self.graph,
            "devices": len(p.scan.devices),
            "objects": p.scan.objects,
            "mapping": p.mapping.summary(),
            "low_confidence_threshold": LOW_CONFIDENCE,
            "review_rows_written": p.review_rows,
            "review_unmatched_rows": len(p.decisions.unmatched) if p.decisions else 0,
            "scan_notes": list(p.scan.notes),
            "ingest": self.ingest.as_dict() if self.ingest else None,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


def ingest_prepared(
    platform: Platform,
    prepared: Prepared,
    *,
    graph: str = DEFAULT_GRAPH,
    merge: bool = False,
    dry_run: bool = False,
    author: str = "ingest bacnet",
) -> BacnetIngestSummary:
    """Validate and commit the mapped model (``dry_run``: validate only; a model that does
    not conform raises ``ValidationFailedError`` either way, and nothing is stored)."""
    timings = dict(prepared.timings)
    t0 = time.perf_counter()
    result: IngestResult | None = None
    if dry_run:
        report = platform.models.validate(prepared.mapping.triples)
        if not report.conforms:
            raise ValidationFailedError(
                f"The model for <{graph}> has {len(report.violations)} SHACL violation(s)",
                report=report.as_dict(),
            )
        timings["validate"] = time.perf_counter() - t0
    else:
        result = platform.models.ingest_triples(
            graph=graph,
            triples=prepared.mapping.triples,
            mode="merge" if merge else "replace",
            author=author,
        )
        timings["ingest"] = time.perf_counter() - t0
    return BacnetIngestSummary(graph, prepared, result, timings)


def print_summary(summary: BacnetIngestSummary, console: Console, *, limit: int = 20) -> None:
    p = summary.prepared
    m = p.mapping
    if summary.ingest is not None:
        stored = f"graph now {summary.ingest.graph_triples} triples"
        for note in summary.ingest.notes:
            console.print(f"[yellow]note[/yellow]: {note}")
    else:
        stored = "validated only (dry run), nothing stored"
    console.print(
        f"<{summary.graph}>: {len(p.scan.devices)} device(s), {p.scan.objects} object(s) -> "
        f"{len(m.points)} point(s), {len(m.triples)} triples; {stored}"
    )
    console.print(
        f"classified {len(m.classified)}/{len(m.points)} ({m.coverage:.1%}); "
        f"unclassified {len(m.unclassified)}; low confidence (< {LOW_CONFIDENCE}) "
        f"{len(m.low_confidence)}; reviewed "
        f"{sum(1 for x in m.points if x.guess.source == 'review')}; skipped {len(m.skipped)}; "
        f"not points {sum(m.not_points.values())}"
    )
    _list(console, "unclassified", m.unclassified, limit)
    _list(console, "low confidence", m.low_confidence, limit)
    for unit, n in sorted(m.unknown_units.items()):
        console.print(f"[yellow]unit without QUDT equivalent[/yellow] {unit!r} on {n} point(s)")
    if p.decisions:
        for line, (device, identifier) in p.decisions.unmatched:
            console.print(
                f"[yellow]review line {line}[/yellow]: no {identifier} on device {device} "
                "in this scan (ignored)"
            )
    for note in p.scan.notes:
        console.print(f"[yellow]scan[/yellow]: {note}")
    if p.review_rows is not None:
        console.print(f"review file: {p.review_rows} row(s), lowest confidence first")
    console.print("times: " + ", ".join(f"{k} {v:.2f}s" for k, v in summary.timings.items()))


def _list(console: Console, title: str, points: list[MappedPoint], limit: int) -> None:
    for x in points[:limit]:
        console.print(
            f"[yellow]{title}[/yellow] device {x.device.instance} {x.obj.identifier} "
            f"{x.obj.name!r} -> brick:{x.guess.brick_class} ({x.guess.confidence:.2f}): "
            f"{x.guess.reason}"
        )
    if len(points) > limit:
        console.print(f"... and {len(points) - limit} more {title}")
