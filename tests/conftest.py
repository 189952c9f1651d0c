"""Shared fixtures: real stores (on-disk Oxigraph, and a real `oxigraph serve`), real servers.

Opening a platform loads ~156k ontology triples, so platforms are session-scoped, one per
store mode; tests write to their own uniquely named graphs.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
import uvicorn
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool

from app.errors import UnavailableError
from app.graph.models import ModelValidator
from app.graph.ontology import default_sources
from app.main import create_app
from app.platform import Platform, build_validator, open_platform
from app.security.tokens import Scope
from app.settings import Settings
from app.telemetry.db import connect_pool
from app.telemetry.pg_server import LocalPostgres, find_bin_dir
from app.telemetry.ports import free_port
from app.telemetry.readings import TelemetryStore, open_store
from ingest.demo_building import generate_building

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_data(*parts: str) -> Path:
    """A path in ../shared/data, skipping the test where that folder is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (third-party data only present beside CI clones)")
    return path


@pytest.fixture(scope="session")
def validator() -> ModelValidator:
    settings = Settings()
    return build_validator(default_sources(settings.qudt_dir), settings.shapes_dir)


@pytest.fixture(scope="session")
def oxigraph_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `oxigraph serve` on 127.0.0.1 (the binary ships in the `oxigraph` wheel)."""
    exe = shutil.which("oxigraph") or str(Path(sys.executable).parent / "oxigraph")
    port = free_port()
    location = tmp_path_factory.mktemp("oxigraph-server")
    proc = subprocess.Popen(
        [
            exe,
            "serve",
            "--location",
            str(location),
            "--bind",
            f"127.0.0.1:{port}",
            "--timeout-s",
            "60",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/query", params={"query": "ASK {}"}, timeout=1).raise_for_status()
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("oxigraph serve did not start")
    yield url
    proc.terminate()
    proc.wait(10)


@dataclass
class PgServer:
    server: LocalPostgres
    dsn: str

    @property
    def root(self) -> Path:
        return self.server.root

    def database(self, name: str) -> str:
        """A DSN for database ``name`` on this server, created if missing: each platform
        gets its own, since revisions and events describe one graph store."""
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if exists.fetchone() is None:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return make_conninfo(self.dsn, dbname=name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    try:
        find_bin_dir()
    except UnavailableError as exc:
        pytest.skip(f"PostgreSQL server binaries are not installed: {exc.detail}")
    root = Path(tempfile.mkdtemp(prefix="twingraph-pg-test-"))
    server = LocalPostgres(root)
    try:
        yield PgServer(server, server.start())
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_pool(pg_server: PgServer) -> Iterator[ConnectionPool]:
    pool = connect_pool(pg_server.dsn, max_size=4, timeout_s=2)
    try:
        yield pool
    finally:
        pool.close()


@pytest.fixture(scope="session")
def telemetry_store(pg_pool: ConnectionPool) -> TelemetryStore:
    return open_store(pg_pool)


def run_cli(*args: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`twingraph ARGS` as a real process (a wide console, so rich does not wrap output)."""
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        env={**env, "COLUMNS": "250"},
        timeout=300,
        check=False,
    )


def make_settings(tmp: Path, mode: str, graph_url: str | None, **extra: object) -> Settings:
    return Settings(data_dir=tmp, graph_url=graph_url if mode == "remote" else None, **extra)


@pytest.fixture(scope="session", params=["embedded", "remote"])
def store_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture(scope="session")
def platform(
    store_mode: str,
    validator: ModelValidator,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> Iterator[Platform]:
    url = request.getfixturevalue("oxigraph_server") if store_mode == "remote" else None
    pg: PgServer = request.getfixturevalue("pg_server")
    settings = make_settings(
        tmp_path_factory.mktemp(f"data-{store_mode}"),
        store_mode,
        url,
        database_url=pg.database(f"platform_{store_mode}"),
    )
    p = open_platform(settings, validator=validator)
    yield p
    p.close()


@pytest.fixture(scope="session")
def demo_graph(platform: Platform) -> str:
    """The demo building (3 floors x 4 VAVs), loaded once per store mode."""
    graph = "urn:twingraph:model:fixture-demo"
    platform.models.ingest_triples(
        graph=graph, triples=generate_building(floors=3, vavs_per_floor=4)
    )
    return graph


@pytest.fixture
def graph_iri() -> str:
    return f"urn:twingraph:model:test-{uuid.uuid4().hex[:10]}"


@dataclass
class Server:
    url: str
    platform: Platform
    read: str
    write: str
    admin: str

    def auth(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, scope)}"}


@pytest.fixture(scope="session")
def server(platform: Platform, demo_graph: str) -> Iterator[Server]:
    """The ASGI app served by uvicorn on a real 127.0.0.1 socket."""
    app = create_app(platform=platform)
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start"
    yield Server(
        url=f"http://127.0.0.1:{port}",
        platform=platform,
        read=platform.tokens.create(Scope.READ, label="tests"),
        write=platform.tokens.create(Scope.WRITE, label="tests"),
        admin=platform.tokens.create(Scope.ADMIN, label="tests"),
    )
    srv.should_exit = True
    thread.join(10)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Work units for pytest-xdist's ``--dist loadgroup`` (what `make test` runs): all
    tests on one session platform (store mode) form one unit, so each worker opens a
    platform once rather than switching modes back and forth; every other test goes with
    its module, so module fixtures (brokers, servers, clusters) start once."""
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        callspec = getattr(item, "callspec", None)
        mode = callspec.params.get("store_mode") if callspec is not None else None
        group = f"platform-{mode}" if mode else item.nodeid.split("::", 1)[0]
        item.add_marker(pytest.mark.xdist_group(group))
