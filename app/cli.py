"""The ``twingraph`` command."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.errors import AppError
from app.security.haystack_users_cli import users_cli as haystack_users_cli
from app.settings import Settings
from app.twins.broker_cli import broker_cli
from ingest.bacnet.cli import ingest_bacnet

if TYPE_CHECKING:
    from app.platform import Platform

cli = typer.Typer(no_args_is_help=True, help="TwinGraph: semantic graph digital twins.")
ingest_cli = typer.Typer(no_args_is_help=True, help="Load building models.")
token_cli = typer.Typer(no_args_is_help=True, help="Manage API tokens.")
cli.add_typer(ingest_cli, name="ingest")
cli.add_typer(token_cli, name="token")
telemetry_cli = typer.Typer(no_args_is_help=True, help="Readings: import and inspect.")
cli.add_typer(telemetry_cli, name="telemetry")
cli.add_typer(haystack_users_cli, name="haystack-user")
cli.add_typer(broker_cli, name="broker")

out = Console()
err = Console(stderr=True)

DEMO_GRAPH = "urn:twingraph:model:demo"


def _settings(data_dir: Path | None) -> Settings:
    return Settings(data_dir=data_dir) if data_dir else Settings()


DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Overrides TWINGRAPH_DATA_DIR.", show_default=False),
]


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


@contextmanager
def _opened(settings: Settings, *, telemetry: bool = False) -> Iterator[Platform]:
    """The platform for one command; AppErrors end the command with their message.

    Graph commands do not need PostgreSQL, so telemetry is opened only when asked for.
    """
    from app.platform import open_platform

    try:
        platform = open_platform(settings, telemetry=telemetry)
    except AppError as exc:
        _fail(exc)
    try:
        yield platform
    except AppError as exc:
        _fail(exc)
    finally:
        platform.close()


def _fail(exc: AppError) -> NoReturn:
    err.print(f"[red]error[/red] ({exc.code}): {exc.detail}")
    report = exc.extra.get("report")
    if isinstance(report, dict):
        _print_report(report, console=err)
    raise typer.Exit(2 if exc.status != 422 else 1)


def _print_report(report: dict[str, object], *, console: Console) -> None:
    results = report.get("results") or []
    assert isinstance(results, list)
    table = Table("severity", "focus node", "path", "message", "shape", show_lines=False)
    for r in results[:200]:
        table.add_row(
            str(r["severity"]),
            str(r["focus_node"]),
            str(r.get("path") or ""),
            str(r["message"]),
            str(r.get("shape") or ""),
        )
    if results:
        console.print(table)
    if len(results) > 200:
        console.print(f"... and {len(results) - 200} more")
    console.print(
        f"conforms: {report['conforms']}  violations: {report['violations']}  "
        f"warnings: {report['warnings']}  focus nodes checked: {report['focus_nodes_checked']}"
    )


@cli.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Interface to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default 8000).")] = None,
    demo: Annotated[
        bool,
        typer.Option(
            help="Load the demo building if no model is stored, allow anonymous reads, print a token."
        ),
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Run the HTTP API."""
    import uvicorn

    from app.main import create_app
    from app.security.tokens import Scope

    settings = _settings(data_dir)
    updates: dict[str, object] = {}
    if host:
        updates["host"] = host
    if port:
        updates["port"] = port
    if demo:
        updates["anonymous_read"] = True
    settings = settings.model_copy(update=updates)
    from app.platform import open_platform

    try:
        platform = open_platform(settings)
    except AppError as exc:
        _fail(exc)
    base = f"http://{settings.host}:{settings.port}"
    from app.telemetry.live import start_broker_auth_files, start_demo_feed

    # The app's startup (app.lifespan) starts the MQTT ingest (in the twin leader) and the
    # event bridge (events also on MQTT: twingraph/events/<type>) before serving.
    try:
        if demo:
            _serve_demo_setup(platform)
        start_broker_auth_files(platform)
        if demo and platform.settings.mqtt_url:
            feed = start_demo_feed(platform, platform.settings.mqtt_url, graph=DEMO_GRAPH)
            err.print(f"Simulating live readings for {feed.points} demo points over MQTT")
    except AppError as exc:
        platform.close()
        _fail(exc)
    if demo:
        token = platform.tokens.create(Scope.ADMIN, label="make run demo")
        sample = next((r for r in platform.points.all() if r.point.endswith("/zat")), None)
        sample = sample or next(iter(platform.points.all()), None)
        out.print(
            "\n[bold]TwinGraph is running[/bold]\n"
            f"  Home:          {base}/\n"
            f"  Explorer:      {base}/explorer  (SPARQL editor: {base}/explorer/sparql)\n"
            f"  GraphQL:       {base}/graphql  (GraphiQL in a browser)\n"
            f"  Events (SSE):  {base}/events  and live readings at {base}/events/readings\n"
            f"  API docs:      {base}/docs\n"
            f"  Health:        {base}/health\n"
            f"  SPARQL:        {base}/sparql\n"
            f"  Graph Store:   {base}/rdf-graphs\n"
            f"  Named queries: {base}/queries\n"
            f"  MQTT broker:   {_public_mqtt(platform)} (topics twingraph/<site>/...)\n"
            f"  Admin token:   {token}\n"
            "  Try: curl -s "
            f"'{base}/queries/ahus/list' -H 'Accept: text/csv'\n"
            + (
                f"       curl -s '{base}/points/{sample.uuid}/readings?bucket=1m'\n"
                if sample
                else ""
            ),
            soft_wrap=True,  # URLs and commands stay whole on narrow terminals and in logs
        )
    app = create_app(settings, platform=platform, close_platform=True)
    try:
        uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    finally:
        platform.close()  # if uvicorn never started; closing twice is harmless


def _public_mqtt(platform: Platform) -> str:
    """The broker's address without the platform's password (devices log in as their
    twin id with their device secret)."""
    from app.telemetry.broker import public_url

    url = platform.settings.mqtt_url
    return public_url(url) if url else "none"


def _serve_demo_setup(platform: Platform) -> None:
    """Load the demo building if no model is stored; run a local broker if none is set."""
    from app.telemetry.live import start_local_broker

    if not any(g.kind == "model" for g in platform.models.graphs()):
        from ingest.demo_building import generate_building

        with err.status("Loading the demo building..."):
            result = platform.models.ingest_triples(
                graph=DEMO_GRAPH,
                triples=generate_building(floors=3, vavs_per_floor=6),
                author="twingraph serve --demo",
            )
        err.print(f"Demo building loaded into <{DEMO_GRAPH}>: {result.graph_triples} triples")
    if platform.settings.mqtt_url is None:
        platform.settings.mqtt_url = start_local_broker(platform)


@ingest_cli.command("turtle")
def ingest_turtle(
    paths: Annotated[
        list[Path],
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="RDF files (Turtle, N-Triples, N-Quads, JSON-LD, RDF/XML).",
        ),
    ],
    graph: Annotated[
        str | None,
        typer.Option(
            help="Target graph IRI; all files go into it. Default: one graph per file, urn:twingraph:model:<name>."
        ),
    ] = None,
    replace: Annotated[
        bool,
        typer.Option("--replace/--merge", help="Replace the graph (default) or merge into it."),
    ] = True,
    lenient: Annotated[
        bool, typer.Option(help="Accept invalid IRIs found in real-world files.")
    ] = False,
    validate: Annotated[
        bool, typer.Option("--validate/--no-validate", help="SHACL-validate before committing.")
    ] = True,
    migrate: Annotated[
        bool, typer.Option(help="Rewrite outdated Brick namespaces to current Brick.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Parse, validate and atomically commit models into named graphs."""
    from pyoxigraph import Triple

    from app.graph.rdf_io import format_from_filename

    mode: Literal["replace", "merge"] = "replace" if replace else "merge"
    # The database is opened too: every model change is recorded as a revision.
    with _opened(_settings(data_dir), telemetry=True) as platform:
        groups: dict[str, list[Path]] = {}
        for p in paths:
            groups.setdefault(graph or f"urn:twingraph:model:{p.stem}", []).append(p)
        with _progress() as progress:
            task = progress.add_task("ingest", total=len(paths) + len(groups))
            for target, files in groups.items():
                triples: list[Triple] = []
                notes: list[str] = []
                for f in files:
                    progress.update(task, description=f"parse {f.name}")
                    parsed, _migration, more = platform.models.parse(
                        f.read_bytes(),
                        format_from_filename(f.name),
                        lenient=lenient,
                        migrate_legacy=migrate,
                        source=str(f),
                    )
                    triples += parsed
                    notes += more
                    progress.advance(task)
                progress.update(task, description=f"validate + commit <{target}>")
                result = platform.models.ingest_triples(
                    graph=target, triples=triples, mode=mode, validate=validate, author="cli"
                )
                progress.advance(task)
                for n in notes + result.notes:
                    err.print(f"[yellow]note[/yellow]: {n}")
                warnings = len(result.report.warnings) if result.report else 0
                out.print(
                    f"<{target}>: {result.triples_in} triples in, graph now {result.graph_triples}, "
                    f"{result.inferred_triples} inferred types, {warnings} warnings "
                    f"({', '.join(f'{k} {v:.2f}s' for k, v in result.timings.items())})"
                )


@ingest_cli.command("haystack")
def ingest_haystack(
    path: Annotated[
        Path | None,
        typer.Argument(
            exists=True,
            dir_okay=False,
            help="Haystack grid: .zinc, .json (Haystack 3 JSON or Hayson), .trio, .csv",
        ),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option(help="Read from a live Haystack server instead (its API base URL)."),
    ] = None,
    user: Annotated[str | None, typer.Option(help="Haystack user (SCRAM login).")] = None,
    password: Annotated[
        str | None,
        typer.Option(envvar="TWINGRAPH_HAYSTACK_PASSWORD", help="Password; prompted if omitted."),
    ] = None,
    filter_text: Annotated[
        str | None,
        typer.Option("--filter", help="Haystack filter of the entities to read (with --url)."),
    ] = None,
    his: Annotated[
        str | None,
        typer.Option(help="Import history over a hisRead range, e.g. 2024-01-01,2024-01-31."),
    ] = None,
    graph: Annotated[
        str | None,
        typer.Option(help="Target graph IRI. Default: urn:twingraph:model:<file stem>."),
    ] = None,
    base: Annotated[
        str | None,
        typer.Option(help="Base IRI for entities. Default: urn:twingraph:haystack:<site id>/."),
    ] = None,
    merge: Annotated[
        bool, typer.Option("--merge/--replace", help="Merge into the graph or replace it.")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Parse a Haystack export (or read a live server), map it to Brick/REC, validate and
    commit it."""
    from ingest.haystack.cli import run_haystack_ingest
    from ingest.haystack.values import HaystackParseError

    if url is not None:
        from ingest.haystack.live import connect, ingest_from_server

        if user is not None and password is None:
            password = typer.prompt(f"Password for {user}", hide_input=True)
        try:
            client = connect(url, user, password)
        except AppError as exc:
            _fail(exc)
        # The database is opened too: every model change is recorded as a revision.
        with _opened(_settings(data_dir), telemetry=True) as platform:
            ingest_from_server(
                platform,
                client,
                err,
                graph=graph,
                base=base,
                filter_text=filter_text,
                his_range=his,
                merge=merge,
            )
        return
    if path is None:
        err.print("[red]error[/red]: give a Haystack file or --url")
        raise typer.Exit(2)
    with _opened(_settings(data_dir), telemetry=True) as platform:
        try:
            run_haystack_ingest(platform, path, graph, base, err, merge=merge)
        except HaystackParseError as exc:
            err.print(f"[red]error[/red] (parse_error): {path}: {exc}")
            raise typer.Exit(1) from exc


@cli.command("validate")
def validate_cmd(
    paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)],
    lenient: bool = False,
    migrate: bool = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Validate models against Brick's shapes without storing them; exit 1 if not conforming."""
    from app.graph.ontology import default_sources
    from app.graph.rdf_io import format_from_filename, parse_triples
    from app.graph.validation import ShaclValidator

    settings = Settings()
    sources = default_sources(
        settings.qudt_dir,
        settings.ontology_paths,
        brick_version=settings.brick_version,
        extensions=settings.ontology_extensions,
        errata=settings.brick_errata,
    )
    extra = sorted(settings.shapes_dir.glob("*.ttl")) if settings.shapes_dir.is_dir() else []
    with err.status("Preparing shapes..."):
        validator = ShaclValidator.from_files([s.path for s in sources], extra_shapes=extra)
    failed = False
    for p in paths:
        try:
            triples = parse_triples(
                p.read_bytes(), format_from_filename(p.name), lenient=lenient, source=str(p)
            )
        except AppError as exc:
            err.print(f"[red]{p}[/red]: {exc.detail}")
            failed = True
            continue
        if migrate:
            from app.graph.migration import migrate as do_migrate

            triples, _ = do_migrate(triples, replaced_by={}, is_known_class=validator.known_class)
        report = validator.validate(triples).as_dict()
        failed |= not report["conforms"]
        if as_json:
            out.print_json(json.dumps({"file": str(p), **report}))
        else:
            out.print(f"[bold]{p}[/bold]")
            _print_report(report, console=out)
    raise typer.Exit(1 if failed else 0)


@cli.command()
def query(
    text: Annotated[str | None, typer.Argument(help="SPARQL query text.")] = None,
    file: Annotated[Path | None, typer.Option("-f", "--file", exists=True, dir_okay=False)] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="table, csv, json (SELECT/ASK) or turtle (CONSTRUCT).")
    ] = "table",
    data_dir: DataDir = None,
) -> None:
    """Run a read-only SPARQL query against the local store."""
    if (text is None) == (file is None):
        err.print("Give the query as an argument or with -f FILE (one of them).")
        raise typer.Exit(2)
    sparql = text if text is not None else file.read_text()  # type: ignore[union-attr]
    with _opened(_settings(data_dir)) as platform:
        _print_answer(platform.sparql.run, sparql, fmt)


def _print_answer(run: object, sparql: str, fmt: str, **kwargs: object) -> None:
    accept = {
        "table": "application/sparql-results+json, text/turtle;q=0.5",
        "csv": "text/csv, text/turtle;q=0.5",
        "json": "application/sparql-results+json, application/ld+json;q=0.5",
        "turtle": "text/turtle",
    }.get(fmt, fmt)
    answer = run(sparql, accept=accept, **kwargs)  # type: ignore[operator]
    if fmt != "table" or answer.media_type != "application/sparql-results+json":
        sys.stdout.write(answer.body.decode())
        return
    data = json.loads(answer.body)
    if "boolean" in data:
        out.print(str(data["boolean"]).lower())
        return
    variables = data["head"]["vars"]
    table = Table(*variables)
    for b in data["results"]["bindings"]:
        table.add_row(*(b.get(v, {}).get("value", "") for v in variables))
    out.print(table)
    out.print(f"{len(data['results']['bindings'])} rows")


@cli.command()
def graphs(
    data_dir: DataDir = None,
    all_graphs: Annotated[
        bool, typer.Option("--all", help="Include ontology and inferred graphs.")
    ] = False,
) -> None:
    """List named graphs with their triple counts."""
    with _opened(_settings(data_dir)) as platform:
        table = Table("graph", "kind", "triples")
        for g in platform.models.graphs():
            if all_graphs or g.kind == "model":
                table.add_row(g.iri, g.kind, str(g.triples))
        out.print(table)


@cli.command("queries")
def named_queries(
    name: Annotated[
        str | None, typer.Argument(help="Run this named query; omit to list them.")
    ] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value")] = None,
    fmt: Annotated[str, typer.Option("--format")] = "table",
    data_dir: DataDir = None,
) -> None:
    """List the named queries, or run one."""
    from app.graph.named_queries import bind_params, with_values

    with _opened(_settings(data_dir)) as platform:
        if name is None:
            table = Table("name", "params", "title")
            for q in sorted(platform.queries.values(), key=lambda q: q.key):
                table.add_row(q.key, ", ".join(p.name for p in q.params), q.title)
            out.print(table)
            return
        found = platform.queries.get(name)
        if found is None:
            err.print(f"No named query {name!r}")
            raise typer.Exit(2)
        raw = dict(p.split("=", 1) for p in (param or []) if "=" in p)
        _print_answer(platform.sparql.run, with_values(found, bind_params(found, raw)), fmt)


@cli.command()
def demo(
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("demo_building.ttl"),
    floors: int = 3,
    vavs_per_floor: int = 6,
    seed: int = 0,
) -> None:
    """Write the generated demo building to a Turtle file."""
    from ingest.demo_building import generate_building, to_turtle

    triples = generate_building(floors=floors, vavs_per_floor=vavs_per_floor, seed=seed)
    output.write_text(to_turtle(triples))
    out.print(f"{output}: {len(triples)} triples")


@token_cli.command("create")
def token_create(
    scope: Annotated[str, typer.Option(help="read, write or admin")] = "read",
    label: str = "",
    data_dir: DataDir = None,
) -> None:
    """Create a token and print it (it is stored hashed and cannot be shown again)."""
    from app.security.tokens import Scope, TokenStore

    try:
        parsed = Scope.parse(scope)
    except AppError as exc:
        _fail(exc)
        return
    settings = _settings(data_dir)
    print(TokenStore(settings.tokens_path).create(parsed, label=label))


@token_cli.command("list")
def token_list(data_dir: DataDir = None) -> None:
    from app.security.tokens import TokenStore

    table = Table("id", "scope", "label", "revoked")
    for t in TokenStore(_settings(data_dir).tokens_path).list():
        table.add_row(t.token_id, t.scope.name.lower(), t.label, "yes" if t.revoked else "")
    out.print(table)


@token_cli.command("revoke")
def token_revoke(token_id: str, data_dir: DataDir = None) -> None:
    from app.security.tokens import TokenStore

    if not TokenStore(_settings(data_dir).tokens_path).revoke(token_id):
        err.print(f"No token with id {token_id}")
        raise typer.Exit(1)


@telemetry_cli.command("import")
def telemetry_import(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A CSV trend export.")],
    timezone: Annotated[
        str, typer.Option(help="Zone of times written without one (IANA name).")
    ] = "UTC",
    skip_unknown: Annotated[
        bool, typer.Option(help="Import the columns that name known points, report the rest.")
    ] = False,
    batch: Annotated[int, typer.Option(help="Readings per database write.")] = 50_000,
    data_dir: DataDir = None,
) -> None:
    """Import readings from CSV; columns map to points by time-series UUID/id, IRI or label."""
    from zoneinfo import ZoneInfo

    from app.telemetry.csv_import import parse_csv

    with _opened(_settings(data_dir), telemetry=True) as platform:
        assert platform.telemetry is not None
        directory = platform.points

        def resolve(key: str) -> uuid.UUID | None:
            ref = directory.resolve(key)
            return ref.uuid if ref else None

        total_lines = sum(1 for _ in path.open(encoding="utf-8-sig")) - 1
        with _progress() as progress:
            task = progress.add_task(f"read {path.name}", total=max(total_lines, 1))
            with path.open(encoding="utf-8-sig", newline="") as fh:
                parsed = parse_csv(
                    fh,
                    resolve=resolve,
                    default_tz=ZoneInfo(timezone),
                    on_row=lambda n: progress.update(task, completed=n - 1),
                )
            if parsed.unmatched and not skip_unknown:
                err.print(
                    "[red]error[/red]: columns that name no known point: "
                    + ", ".join(parsed.unmatched)
                    + " (nothing imported; --skip-unknown imports the rest)"
                )
                raise typer.Exit(1)
            store_task = progress.add_task("store", total=len(parsed.readings))
            inserted = duplicates = 0
            for i in range(0, len(parsed.readings), batch):
                chunk = parsed.readings[i : i + batch]
                result = platform.telemetry.write(readings=chunk)
                inserted += result.inserted
                duplicates += result.duplicates
                progress.advance(store_task, len(chunk))
        for name in parsed.unmatched:
            err.print(f"[yellow]skipped column[/yellow]: {name}")
        out.print(
            f"{path.name}: {parsed.rows} rows, {len(parsed.columns)} points, "
            f"{len(parsed.readings)} readings ({inserted} new, {duplicates} already stored), "
            f"{parsed.gaps} empty cells"
        )


@telemetry_cli.command("import-his")
def telemetry_import_his(
    paths: Annotated[
        list[Path], typer.Argument(exists=True, dir_okay=False, help="Haystack hisRead grids.")
    ],
    point: Annotated[
        str | None,
        typer.Option(
            help="The point (Haystack id, time-series UUID/id, IRI or label). "
            "Default: the file name, as hisRead exports are named after the point id."
        ),
    ] = None,
    data_dir: DataDir = None,
) -> None:
    """Import Haystack history grids (ts, val) as readings of their points."""
    from ingest.haystack.job import his_to_readings
    from ingest.haystack.readers import read_grid

    with _opened(_settings(data_dir), telemetry=True) as platform:
        assert platform.telemetry is not None
        failed = False
        for path in paths:
            key = point or path.stem
            ref = platform.points.resolve(key)
            if ref is None:
                err.print(f"[red]{path.name}[/red]: no point {key!r} in the graph")
                failed = True
                continue
            readings = his_to_readings(read_grid(path), ref.uuid)
            result = platform.telemetry.write(readings=readings)
            out.print(
                f"{path.name} -> <{ref.point}>: {len(readings)} readings "
                f"({result.inserted} new, {result.duplicates} already stored)"
            )
        if failed:
            raise typer.Exit(1)


ingest_cli.command("bacnet")(ingest_bacnet)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
