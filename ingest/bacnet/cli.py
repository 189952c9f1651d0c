"""``twingraph ingest bacnet``: scan (or replay a scan), classify, validate + commit, poll.

The command is registered in ``app.cli``; the work is in :mod:`ingest.bacnet.job` (scan ->
model) and :mod:`ingest.bacnet.poll` (present values -> telemetry). Heavy imports
(bacpypes3, the platform) happen inside the command, so ``twingraph --help`` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from app.platform import Platform
    from ingest.bacnet.client import Network
    from ingest.bacnet.job import BacnetIngestSummary
    from ingest.bacnet.poll import PollResult
    from ingest.bacnet.scan import Scan

DEFAULT_GRAPH = "urn:twingraph:model:bacnet"


def ingest_bacnet(
    address: Annotated[
        str | None,
        typer.Option(
            help="Our BACnet/IP address as IP/prefix[:port] (e.g. 192.168.1.20/24; the prefix "
            "sets the broadcast address), or 'host'. Needed to scan or poll.",
            show_default=False,
        ),
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(help="Send Who-Is to this address (IP[:port]) instead of broadcasting."),
    ] = None,
    low: Annotated[int | None, typer.Option(help="Lowest device instance to ask for.")] = None,
    high: Annotated[int | None, typer.Option(help="Highest device instance to ask for.")] = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for I-Am answers.")] = 3.0,
    local_instance: Annotated[
        int, typer.Option(help="Device instance TwinGraph uses on the network.")
    ] = 4194300,
    apdu_timeout: Annotated[
        int, typer.Option(help="Milliseconds to wait for each answer (one retry).")
    ] = 2000,
    from_scan: Annotated[
        Path | None,
        typer.Option(
            exists=True, dir_okay=False, help="Replay a saved scan instead of scanning (offline)."
        ),
    ] = None,
    save_scan: Annotated[
        Path | None, typer.Option(dir_okay=False, help="Save the scan as JSON.")
    ] = None,
    review: Annotated[
        Path | None,
        typer.Option(dir_okay=False, help="Write the guessed classes to this CSV for review."),
    ] = None,
    apply_review: Annotated[
        Path | None,
        typer.Option(exists=True, dir_okay=False, help="Use the classes of an edited review CSV."),
    ] = None,
    graph: Annotated[str, typer.Option(help="Target graph IRI.")] = DEFAULT_GRAPH,
    base: Annotated[
        str | None, typer.Option(help="Base IRI for devices and points (urn:twingraph:bacnet:).")
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge/--replace", help="Merge into the graph or replace it.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option(help="Validate the model but store nothing (no polling either).")
    ] = False,
    poll: Annotated[
        float | None,
        typer.Option(help="Poll present values into telemetry every SECONDS.", show_default=False),
    ] = None,
    rounds: Annotated[
        int | None, typer.Option(help="Polling rounds (default 1 unless --duration is given).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option(help="Poll (or follow COV) for this many seconds.")
    ] = None,
    cov: Annotated[
        bool, typer.Option(help="Subscribe to COV for --duration seconds instead of polling.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Overrides TWINGRAPH_DATA_DIR.", show_default=False),
    ] = None,
) -> None:
    """Discover BACnet devices and objects, map them to a Brick model, optionally poll."""
    from app import cli as app_cli
    from app.errors import AppError
    from ingest.bacnet.client import Network
    from ingest.bacnet.job import ingest_prepared, prepare, print_summary
    from ingest.bacnet.scan import load_scan
    from ingest.bacnet.scan import save_scan as write_scan

    err, out = app_cli.err, app_cli.out
    problem = _check_options(
        address=address,
        from_scan=from_scan,
        target=target,
        low=low,
        high=high,
        poll=poll,
        rounds=rounds,
        duration=duration,
        cov=cov,
        dry_run=dry_run,
    )
    if problem:
        err.print(f"[red]error[/red] (invalid_options): {problem}")
        raise typer.Exit(2)
    net = (
        Network(address, local_instance=local_instance, apdu_timeout_ms=apdu_timeout)
        if address
        else None
    )
    t0 = time.perf_counter()
    try:
        if from_scan is not None:
            scan = load_scan(from_scan)
            err.print(
                f"replaying {from_scan}: {len(scan.devices)} device(s), {scan.objects} object(s)"
            )
        else:
            assert net is not None
            scan = _scan(net, target, low, high, wait, err)
        if save_scan is not None:
            write_scan(scan, save_scan)
            err.print(f"scan saved to {save_scan}")
        scan_s = time.perf_counter() - t0
        prepared = prepare(scan, base=base, apply_review_from=apply_review, review_to=review)
    except AppError as exc:
        app_cli._fail(exc)
    prepared.timings = {"replay" if from_scan else "scan": scan_s, **prepared.timings}
    polling = (poll is not None or cov) and not dry_run
    # The database is opened even without polling: every model change is a revision.
    with app_cli._opened(app_cli._settings(data_dir), telemetry=True) as platform:
        with err.status(f"validate + commit <{graph}>..."):
            summary = ingest_prepared(platform, prepared, graph=graph, merge=merge, dry_run=dry_run)
        print_summary(summary, err if as_json else out)
        polled = None
        if polling:
            assert net is not None
            polled = _poll(platform, net, summary, poll, rounds, duration, cov, err)
            (err if as_json else out).print(
                f"{'COV' if cov else 'polling'}: {polled.rounds} round(s), {polled.readings} "
                f"reading(s) ({polled.inserted} new, {polled.duplicates} already stored), "
                f"{len(polled.failures)} failure(s)"
            )
            for failure in polled.failures[:10]:
                err.print(f"[yellow]not read[/yellow]: {failure}")
        if as_json:
            data = summary.as_dict() | {"poll": polled.as_dict() if polled else None}
            print(json.dumps(data, indent=2))


def _check_options(
    *,
    address: str | None,
    from_scan: Path | None,
    target: str | None,
    low: int | None,
    high: int | None,
    poll: float | None,
    rounds: int | None,
    duration: float | None,
    cov: bool,
    dry_run: bool,
) -> str | None:
    """Why these options do not go together, or None."""
    if from_scan is None and address is None:
        return "give --address to scan the network, or --from-scan FILE to replay a scan"
    if from_scan is not None and (target or low is not None or high is not None):
        return "--target, --low and --high select what a network scan asks; not with --from-scan"
    if poll is not None and cov:
        return "choose --poll SECONDS or --cov, not both"
    if (poll is not None or cov) and address is None:
        return "polling and COV need --address (the network is asked again)"
    if poll is not None and poll <= 0:
        return "--poll needs a positive number of seconds"
    if cov and (duration is None or duration <= 0):
        return "--cov needs --duration SECONDS"
    if (rounds is not None or duration is not None) and poll is None and not cov:
        return "--rounds and --duration apply to --poll or --cov"
    if rounds is not None and rounds < 1:
        return "--rounds must be at least 1"
    if dry_run and (poll is not None or cov):
        return "--dry-run stores nothing, so it cannot poll"
    return None


def _progress(console: Console) -> Progress:
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
    )


def _scan(
    net: Network, target: str | None, low: int | None, high: int | None, wait: float, err: Console
) -> Scan:
    from ingest.bacnet.client import discover

    where = f"to {target}" if target else f"broadcast from {net.local_address}"
    with _progress(err) as progress:
        task = progress.add_task(f"Who-Is {where} (waiting up to {wait:g}s)", total=None)

        class _Shown:
            found = 0

            def devices(self, count: int) -> None:
                progress.update(
                    task, description=f"{count} device(s) answered; reading objects", total=0
                )

            def objects(self, count: int) -> None:
                self.found += count
                progress.update(task, total=self.found)

            def advance(self) -> None:
                progress.advance(task)

        scan = asyncio.run(
            discover(net, target=target, low=low, high=high, wait_s=wait, progress=_Shown())
        )
    return scan


def _poll(
    platform: Platform,
    net: Network,
    summary: BacnetIngestSummary,
    interval: float | None,
    rounds: int | None,
    duration: float | None,
    cov: bool,
    err: Console,
) -> PollResult:
    from app.domain.telemetry import Reading
    from ingest.bacnet.poll import follow_cov
    from ingest.bacnet.poll import poll as poll_points

    telemetry = platform.telemetry
    assert telemetry is not None

    def sink(readings: list[Reading]) -> tuple[int, int]:
        result = telemetry.write(readings=readings)
        return result.inserted, result.duplicates

    points = summary.mapping.points
    with _progress(err) as progress:
        if cov:
            assert duration is not None
            task = progress.add_task(f"COV on {len(points)} point(s) for {duration:g}s", total=None)
            return asyncio.run(
                follow_cov(
                    net,
                    points,
                    sink,
                    duration_s=duration,
                    on_flush=lambda n: progress.advance(task, n),
                )
            )
        assert interval is not None
        limit = rounds if rounds is not None else (None if duration is not None else 1)
        task = progress.add_task(f"poll {len(points)} point(s) every {interval:g}s", total=limit)
        return asyncio.run(
            poll_points(
                net,
                points,
                sink,
                interval_s=interval,
                rounds=limit,
                duration_s=duration,
                on_round=lambda n, _count: progress.update(task, completed=n),
            )
        )
