"""Wiring: build every service from Settings, and tear them down again.

The API's lifespan and the CLI both call :func:`open_platform`; nothing else constructs a
store. Opening is where start-up work happens: ontologies loaded if missing or changed,
staging graphs a crash left behind dropped, shapes prepared.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from psycopg_pool import ConnectionPool

from app.domain.iris import BRICK, ontology_graph
from app.events.bus import EventBus
from app.events.model_events import ModelEventRecorder
from app.graph.embedded import EmbeddedStore
from app.graph.models import ModelService, ModelValidator
from app.graph.named_queries import NamedQuery, load_named_queries
from app.graph.ontology import (
    ClassHierarchy,
    OntologySource,
    brick_release,
    default_sources,
    drop_staging,
    drop_unconfigured,
    ensure_loaded,
)
from app.graph.remote import RemoteStore
from app.graph.sparql import QueryLimits, SparqlService
from app.graph.store import GraphStore
from app.history.asof import AsOfViews
from app.history.revisions import RevisionStore
from app.points import PointDirectory
from app.security.tokens import TokenStore
from app.settings import Settings
from app.telemetry.db import connect_pool
from app.telemetry.pg_server import LocalPostgres
from app.telemetry.readings import TelemetryStore
from app.telemetry.readings import open_store as open_telemetry_store
from app.telemetry.timescale import TimescaleSettings

if TYPE_CHECKING:
    from app.twins.service import TwinService

log = logging.getLogger("twingraph")


@dataclass
class Platform:
    settings: Settings
    store: GraphStore
    models: ModelService
    sparql: SparqlService
    tokens: TokenStore
    queries: dict[str, NamedQuery]
    sources: list[OntologySource]
    points: PointDirectory
    telemetry: TelemetryStore | None = None
    #: PostgreSQL: the pool behind telemetry, events, revisions (None without a database).
    db: ConnectionPool | None = None
    events: EventBus | None = None
    revisions: RevisionStore | None = None
    history: AsOfViews | None = None
    #: Live twins (app.twins.service.TwinService; None without a database).
    twins: TwinService | None = None
    startup: dict[str, object] = field(default_factory=dict)
    _closers: list[Callable[[], None]] = field(default_factory=list)

    def add_closer(self, closer: Callable[[], None]) -> None:
        """Run ``closer`` when the platform closes (before what was opened earlier)."""
        self._closers.append(closer)

    def close(self) -> None:
        """Release everything in the reverse order it was opened."""
        for closer in reversed(self._closers):
            try:
                closer()
            except Exception:  # closing must go on; the error is logged
                log.exception("error while closing the platform")
        self._closers.clear()


def open_store(settings: Settings) -> GraphStore:
    if settings.graph_url:
        return RemoteStore(settings.graph_url, timeout_s=settings.query_timeout_s + 30)
    return EmbeddedStore(settings.store_dir)


def build_validator(sources: list[OntologySource], shapes_dir: Path) -> ModelValidator:
    from app.graph.validation import ShaclValidator

    extra = sorted(shapes_dir.glob("*.ttl")) if shapes_dir.is_dir() else []
    return ShaclValidator.from_files([s.path for s in sources], extra_shapes=extra)


def check_validator_fits(
    validator: ModelValidator, sources: list[OntologySource], shapes_dir: Path
) -> None:
    """A validator prepared elsewhere (tests share one) must match this ontology set: the
    files it was prepared from are its key (Brick version, extensions, extras, shapes)."""
    files = getattr(validator, "files", None)
    extra = sorted(shapes_dir.glob("*.ttl")) if shapes_dir.is_dir() else []
    if files is not None and tuple(files) != (*(s.path for s in sources), *extra):
        raise ValueError(
            "the validator handed in was prepared for other ontologies: "
            + ", ".join(str(f) for f in files)
        )


def open_database(
    settings: Settings, closers: list[Callable[[], None]]
) -> tuple[str, ConnectionPool]:
    """PostgreSQL: the configured server, or one the platform runs itself.

    A local server this call started is stopped again by the closers; one that was
    already running (another TwinGraph process on the same data dir) is left alone.
    """
    dsn = settings.database_url
    if dsn is None:
        local = LocalPostgres(settings.postgres_dir)
        already_running = local.running
        dsn = local.start()
        if not already_running:
            closers.append(local.stop)
    pool = connect_pool(dsn)
    closers.append(pool.close)
    return dsn, pool


def open_telemetry(settings: Settings, pool: ConnectionPool) -> TelemetryStore:
    """Readings (migrates the schema, sets up TimescaleDB where the server offers it)."""
    return open_telemetry_store(
        pool,
        timescale_settings=TimescaleSettings(
            retention=timedelta(days=settings.retention_days) if settings.retention_days else None
        ),
    )


def open_platform(
    settings: Settings,
    *,
    validator: ModelValidator | None = None,
    telemetry: bool = True,
) -> Platform:
    """Open every service; ``telemetry=False`` skips PostgreSQL (graph-only commands)."""
    t0 = time.perf_counter()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(settings)
    closers: list[Callable[[], None]] = [store.close]
    try:
        sources = default_sources(
            settings.qudt_dir,
            settings.ontology_paths,
            brick_version=settings.brick_version,
            extensions=settings.ontology_extensions,
            errata=settings.brick_errata,
        )
        dropped = drop_staging(store)
        unconfigured = drop_unconfigured(store, sources)
        reloaded = ensure_loaded(store, sources)
        hierarchy = ClassHierarchy.from_store(store)
        if validator is None:
            validator = build_validator(sources, settings.shapes_dir)
        else:
            check_validator_fits(validator, sources, settings.shapes_dir)
        models = ModelService(
            store=store,
            validator=validator,
            hierarchy=hierarchy,
            replaced_by=_replacements(store),
        )
        models.on_ontology_tampered = lambda: _reload(store, sources)
        unfinished = models.drop_unfinished_loads()
        # Stored inferred types follow the ontologies they were computed with.
        refreshed = models.refresh_inferred_types() if reloaded or unconfigured else []
        sparql = SparqlService(
            store=store,
            limits=QueryLimits(
                timeout_s=settings.query_timeout_s,
                max_result_bytes=settings.query_max_result_bytes,
                max_query_length=settings.query_max_length,
                workers=settings.query_workers,
            ),
            hidden_graphs=models.hidden_graphs,
        )
        closers.append(sparql.close)
        queries = load_named_queries(settings.queries_dir) if settings.queries_dir.is_dir() else {}
        readings = events = revisions = history = pool = None
        if telemetry:
            dsn, pool = open_database(settings, closers)
            readings = open_telemetry(settings, pool)
            events = EventBus(pool, dsn=dsn)
            closers.append(events.stop)
            if settings.events_retention_days:
                events.prune(timedelta(days=settings.events_retention_days))
            revisions = RevisionStore(pool)
            history = AsOfViews(
                store=store,
                revisions=revisions,
                hierarchy=hierarchy,
                write_lock=models.write_lock,
            )
            closers.append(history.close)
            models.listeners.append(ModelEventRecorder(revisions=revisions, bus=events))
    except BaseException:
        for closer in reversed(closers):
            closer()
        raise
    platform = Platform(
        settings=settings,
        store=store,
        models=models,
        sparql=sparql,
        tokens=TokenStore(settings.tokens_path),
        queries=queries,
        sources=sources,
        points=PointDirectory(store, version=lambda: models.version),
        telemetry=readings,
        db=pool,
        events=events,
        revisions=revisions,
        history=history,
        _closers=closers,
    )
    if pool is not None and events is not None:
        from app.twins.factory import open_twins

        platform.twins = open_twins(
            settings=settings,
            pool=pool,
            bus=events,
            store=store,
            hierarchy=hierarchy,
            points=platform.points,
            sparql=sparql,
            telemetry=readings,
        )
    platform.startup = {
        "seconds": round(time.perf_counter() - t0, 3),
        "ontologies_reloaded": reloaded,
        "staging_graphs_dropped": dropped,
        "unfinished_loads_dropped": unfinished,
        "ontologies_dropped": unconfigured,
        "inferred_types_refreshed": len(refreshed),
        "qudt_loaded": any(s.name.startswith("qudt") for s in sources),
        "brick_release": brick_release(store),
        "telemetry": readings.features.as_dict() if readings else None,
    }
    log.info("platform open: %s", platform.startup)
    return platform


def _reload(store: GraphStore, sources: list[OntologySource]) -> None:
    log.warning("an update changed an ontology graph without admin scope; reloading from files")
    ensure_loaded(store, sources, force=True)


def _replacements(store: GraphStore) -> dict[str, str]:
    res = store.query(
        f"SELECT ?old ?new WHERE {{ GRAPH <{ontology_graph('brick')}> "
        f"{{ ?old <{BRICK}isReplacedBy> ?new }} }}",
        union_default=False,
    )
    return {row["old"].value: row["new"].value for row in res}  # type: ignore[union-attr]
