"""Configuration, read from ``TWINGRAPH_*`` environment variables.

There is no import-time instance: ``create_app(Settings(...))`` and the CLI build one, and
tests pass values directly (``Settings(data_dir=tmp_path)``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TWINGRAPH_", extra="ignore")

    #: Where the embedded Oxigraph store, tokens and the managed PostgreSQL live.
    data_dir: Path = Path("./var")
    #: Base URL of an ``oxigraph serve`` server; when set the embedded store is not used.
    graph_url: str | None = None

    host: str = "127.0.0.1"
    port: int = 8000
    #: Let requests without a token read (SPARQL queries, GET). Writes always need a token.
    anonymous_read: bool = False

    #: Directory holding the QUDT N-Quads packages (``@vocabulary/{unit,quantitykind,qudt}``).
    qudt_dir: Path = REPO_ROOT / "ontologies" / "node_modules" / "@vocabulary"
    #: Extra ontology files to load (Turtle, N-Triples, N-Quads, RDF/XML, JSON-LD).
    ontology_paths: list[Path] = Field(default_factory=list)
    #: Brick version loaded from the brickschema package (app.graph.ontology.BRICK_VERSIONS).
    brick_version: Literal["1.4", "1.5"] = "1.5"
    #: Load our errata for that Brick release (ontologies/errata/, fixes upstream made after
    #: the release, each citing its upstream change); false: Brick exactly as released.
    brick_errata: bool = True
    #: Extensions loaded with Brick from brickschema, comma-separated or a JSON list:
    #: ``223p`` (ASHRAE 223P and Brick's bridge to it).
    ontology_extensions: Annotated[list[Literal["223p"]], NoDecode] = Field(default_factory=list)
    #: Our own SHACL shapes, validated together with Brick's.
    shapes_dir: Path = REPO_ROOT / "ontologies" / "shapes"
    queries_dir: Path = REPO_ROOT / "queries"
    #: The Explorer UI's front-end libraries (``npm ci`` in ``ui/``; ``make install`` runs it).
    ui_vendor_dir: Path = REPO_ROOT / "ui" / "node_modules"

    #: PostgreSQL for telemetry; when unset the platform runs its own under the data dir.
    database_url: str | None = None
    #: MQTT broker to take readings from (``mqtt://host:port``); unset: no MQTT ingest.
    mqtt_url: str | None = None
    #: MQTT client id: a fixed id keeps the broker-side session (and queued readings).
    mqtt_client_id: str = "twingraph-ingest"
    #: Keep an external Mosquitto's password and ACL files (``passwd``, ``acl``) current in
    #: this directory (see docker-compose.yml); the managed broker needs no setting.
    broker_auth_dir: Path | None = None
    #: Most readings one HTTP batch may carry (413 beyond).
    telemetry_max_batch: int = 200_000
    #: On plain PostgreSQL the twin leader refreshes the hourly and daily reading rollups
    #: this often (seconds; 0: never, bucketed queries then aggregate raw readings).
    telemetry_rollup_interval_s: float = 60.0
    #: Drop raw readings older than this many days (TimescaleDB retention); unset: keep.
    retention_days: int | None = None
    #: Events older than this are deleted when the platform opens (0 keeps them all).
    events_retention_days: int = 90

    #: SPARQL limits: wall-clock seconds, serialized result bytes, query text bytes.
    query_timeout_s: float = 30.0
    query_max_result_bytes: int = 64 * 1024 * 1024
    query_max_length: int = 256 * 1024
    #: Upload limit for models (Graph Store Protocol, ingest endpoints).
    max_upload_bytes: int = 256 * 1024 * 1024
    #: Queries abandoned at their time limit keep a worker until Oxigraph finishes them;
    #: at most this many run at once before new queries are refused with 503.
    query_workers: int = 4

    #: Live twins (app.twins): the MQTT client id of the device channel (a fixed id keeps
    #: the broker-side session, so device messages sent while the server is down wait).
    twins_mqtt_client_id: str = "twingraph-twins"
    #: A device is marked offline after this many seconds without a heartbeat.
    twins_heartbeat_timeout_s: float = 90.0
    #: Twin state history: a new snapshot only when more than this has passed since the last.
    twins_snapshot_delta_s: float = 60.0
    #: Time-to-live of a command that does not say (seconds).
    twins_command_ttl_s: float = 3600.0
    #: How often commands are expired and silent devices marked offline (seconds).
    twins_sweep_interval_s: float = 1.0
    #: Signed device messages whose ts is further than this from the platform clock are refused.
    twins_clock_skew_s: float = 300.0
    #: Processes sharing a database elect one twin leader (device channel, sweeper, reading
    #: sync): how often a follower tries to take over and the leader checks its lock (s).
    twins_leader_retry_s: float = 1.0

    @field_validator("ontology_extensions", mode="before")
    @classmethod
    def _split_extensions(cls, value: object) -> object:
        """``223p`` and ``223p,other`` as well as ``["223p"]`` from the environment."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @property
    def store_dir(self) -> Path:
        return self.data_dir / "oxigraph"

    @property
    def postgres_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "mosquitto"

    @property
    def tokens_path(self) -> Path:
        return self.data_dir / "tokens.sqlite3"
