"""``twingraph ingest haystack --url``: a live Haystack server -> Brick/REC model (+ history).

about -> read(filter) -> the same mapping and validated commit as a file ingest -> for each
``his`` point, hisRead over the requested range -> readings under the point's time-series
UUID. Live values (``curVal``, ``writeVal``, ...) are left out of the records, so re-running
against an unchanged server changes nothing even while its points move: the triples are
derived deterministically from the records and re-sent readings are no-ops.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from app.errors import UnauthorizedError, UnavailableError
from app.graph.models import IngestResult
from app.platform import Platform
from ingest.haystack.client import HaystackClient, HaystackClientError
from ingest.haystack.job import haystack_to_triples, his_to_readings
from ingest.haystack.mapping import MappingResult
from ingest.haystack.values import HaystackParseError, Record

DEFAULT_FILTER = "site or space or equip or point or weatherStation or weather"
#: Live values a server adds to records; kept out of the model, so that re-reading an
#: unchanged server gives the same graph however its points move.
TRANSIENT_TAGS = frozenset(
    {
        "curVal",
        "curStatus",
        "curErr",
        "writeVal",
        "writeLevel",
        "writeStatus",
        "writeErr",
        "hisStatus",
        "hisErr",
        "hisSize",
        "hisStart",
        "hisEnd",
        "hisStartVal",
        "hisEndVal",
    }
)


def stable(record: Record) -> Record:
    """A record without its live values (``TRANSIENT_TAGS``)."""
    return {k: v for k, v in record.items() if k not in TRANSIENT_TAGS}


@dataclass(slots=True)
class LiveIngestSummary:
    graph: str
    server: str
    records: int
    mapping: MappingResult
    ingest: IngestResult
    readings: int = 0
    readings_new: int = 0
    his_failed: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "graph": self.graph,
            "server": self.server,
            "records": self.records,
            "mapping": self.mapping.summary(),
            "ingest": self.ingest.as_dict(),
            "readings": self.readings,
            "readings_new": self.readings_new,
            "his_failed": self.his_failed,
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


def default_graph(about: Record, url: str) -> str:
    name = about.get("serverName") or about.get("productName") or url
    safe = "".join(c if c.isalnum() or c in "-._" else "-" for c in str(name)).strip("-")
    return f"urn:twingraph:model:haystack-{safe or 'server'}"


def run_live_ingest(
    platform: Platform,
    client: HaystackClient,
    console: Console,
    *,
    graph: str | None = None,
    base: str | None = None,
    filter_text: str = DEFAULT_FILTER,
    his_range: str | None = None,
    merge: bool = False,
) -> LiveIngestSummary:
    """Read a server's entities, map and commit them; optionally import their history.

    A point whose hisRead fails is reported in ``his_failed`` and the others go on.
    """
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    about = client.about()
    server = str(about.get("productName") or "?") + " " + str(about.get("productVersion") or "")
    console.print(f"Haystack server at {client.base_url}: {server.strip()}")
    records = [stable(r) for r in client.read(filter_text)]
    timings["read"] = time.perf_counter() - t0
    target = graph or default_graph(about, client.base_url)
    t0 = time.perf_counter()
    mapping = haystack_to_triples(records, base=base)
    timings["map"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = platform.models.ingest_triples(
        graph=target,
        triples=mapping.triples,
        mode="merge" if merge else "replace",
        author=f"cli:haystack {server.strip()}",
    )
    timings["ingest"] = time.perf_counter() - t0
    summary = LiveIngestSummary(
        target, server.strip(), len(records), mapping, result, timings=timings
    )
    if his_range:
        _import_history(platform, client, summary, his_range, console)
    _print(summary, console)
    return summary


def _import_history(
    platform: Platform,
    client: HaystackClient,
    summary: LiveIngestSummary,
    his_range: str,
    console: Console,
) -> None:
    if platform.telemetry is None:
        raise UnavailableError("History import needs telemetry (PostgreSQL)", code="no_telemetry")
    t0 = time.perf_counter()
    points = sorted(summary.mapping.his_points.items())
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    )
    with progress:
        task = progress.add_task(f"hisRead {his_range}", total=len(points))
        for hid, point_uuid in points:
            try:
                grid = client.his_read(hid, his_range)
                readings = his_to_readings(grid, point_uuid)
            except (HaystackClientError, HaystackParseError) as exc:
                summary.his_failed[hid] = str(exc)
                progress.advance(task)
                continue
            if readings:
                written = platform.telemetry.write(readings=readings)
                summary.readings += len(readings)
                summary.readings_new += written.inserted
            progress.advance(task)
    summary.timings["history"] = time.perf_counter() - t0


def _print(summary: LiveIngestSummary, console: Console) -> None:
    m = summary.mapping
    mapped = ", ".join(f"{n} {k}" for k, n in sorted(m.counts.items()))
    console.print(
        f"<{summary.graph}>: {summary.records} records from {summary.server} -> {mapped}; "
        f"{len(m.triples)} triples, graph now {summary.ingest.graph_triples}"
    )
    console.print(
        f"points typed specifically: {m.points_specific}/{m.points_total} "
        f"({m.point_share:.1%}); generic: {len(m.generic)}; not mapped: {len(m.unclassified)}"
    )
    for u in m.unclassified[:20]:
        console.print(f"[yellow]not mapped[/yellow] {u.id} ({u.dis}): {u.reason}")
    if "history" in summary.timings:
        console.print(
            f"history: {summary.readings} readings ({summary.readings_new} new) for "
            f"{len(m.his_points) - len(summary.his_failed)} points"
        )
    for hid, why in list(summary.his_failed.items())[:20]:
        console.print(f"[yellow]hisRead failed[/yellow] {hid}: {why}")
    timings = ", ".join(f"{k} {v:.2f}s" for k, v in summary.timings.items())
    console.print(f"timings: {timings}")


def connect(url: str, user: str | None, password: str | None) -> HaystackClient:
    """Log in (before anything else is opened: a wrong password fails fast)."""
    try:
        return HaystackClient.open(url, user, password)
    except HaystackClientError as exc:
        raise _app_error(url, exc) from exc


def _app_error(url: str, exc: HaystackClientError) -> UnauthorizedError | UnavailableError:
    if exc.status in (401, 403):
        return UnauthorizedError(f"{url}: {exc}", code="haystack_login_failed")
    return UnavailableError(f"{url}: {exc}", code="haystack_server_error")


def ingest_from_server(
    platform: Platform,
    client: HaystackClient,
    console: Console,
    *,
    graph: str | None = None,
    base: str | None = None,
    filter_text: str | None = None,
    his_range: str | None = None,
    merge: bool = False,
) -> LiveIngestSummary:
    """The CLI's entry: ingest, then close the session; client errors become AppErrors."""
    try:
        with client:
            return run_live_ingest(
                platform,
                client,
                console,
                graph=graph,
                base=base,
                filter_text=filter_text or DEFAULT_FILTER,
                his_range=his_range,
                merge=merge,
            )
    except HaystackClientError as exc:
        raise _app_error(client.base_url, exc) from exc
