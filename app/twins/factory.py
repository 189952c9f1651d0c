"""Building the twin service from settings, and starting its background services."""

from __future__ import annotations

from psycopg_pool import ConnectionPool

from app.events.bus import EventBus
from app.graph.ontology import ClassHierarchy
from app.graph.sparql import SparqlService
from app.graph.store import GraphStore
from app.points import PointDirectory
from app.settings import Settings
from app.telemetry.readings import TelemetryStore
from app.twins.entities import TwinEntities
from app.twins.runtime import RuntimeOptions, TwinRuntime
from app.twins.service import TwinService, TwinSettings


def open_twins(
    *,
    settings: Settings,
    pool: ConnectionPool,
    bus: EventBus,
    store: GraphStore,
    hierarchy: ClassHierarchy,
    points: PointDirectory,
    sparql: SparqlService,
    telemetry: TelemetryStore | None,
) -> TwinService:
    return TwinService(
        pool=pool,
        bus=bus,
        entities=TwinEntities(store, hierarchy, points),
        points=points,
        sparql=sparql,
        telemetry=telemetry,
        settings=TwinSettings(
            heartbeat_timeout_s=settings.twins_heartbeat_timeout_s,
            snapshot_delta_s=settings.twins_snapshot_delta_s,
            default_command_ttl_s=settings.twins_command_ttl_s,
        ),
    )


def start_runtime(twins: TwinService, bus: EventBus, settings: Settings) -> TwinRuntime | None:
    """Contend for twin leadership; the leader runs delivery, the sweeper, the reading
    sync and (with ``mqtt_url``) the MQTT device channel. None when another app sharing
    this platform already started the runtime."""
    if twins.runtime is not None:
        return None
    runtime = TwinRuntime(
        twins,
        bus,
        RuntimeOptions(
            mqtt_url=settings.mqtt_url,
            client_id=settings.twins_mqtt_client_id,
            sweep_interval_s=settings.twins_sweep_interval_s,
            clock_skew_s=settings.twins_clock_skew_s,
            leader_retry_s=settings.twins_leader_retry_s,
            rollup_interval_s=settings.telemetry_rollup_interval_s,
        ),
    )
    runtime.start()
    return runtime
