"""The `twingraph` command, run as a real process on a temporary data dir."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg

from tests.conftest import PgServer, run_cli
from tests.factories import broken_unit_model, vav_model


def twingraph(
    *args: str, data_dir: Path, database: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TWINGRAPH_DATA_DIR": str(data_dir)}
    if database is not None:
        env["TWINGRAPH_DATABASE_URL"] = database
    return run_cli(*args, env=env)


def test_cli_ingest_validate_query_graphs_tokens(tmp_path: Path, pg_server: PgServer) -> None:
    data = tmp_path / "data"
    # Model ingest records revisions in PostgreSQL: the session's server, a database of its own.
    database = pg_server.database("cli_test")
    good, bad = tmp_path / "good.ttl", tmp_path / "bad.ttl"
    good.write_text(vav_model())
    bad.write_text(broken_unit_model())

    r = twingraph("validate", str(good), str(bad), data_dir=data)
    assert r.returncode == 1, r.stderr
    assert "urn:ex:bad-zat" in r.stdout

    r = twingraph(
        "ingest", "turtle", str(good), "--graph", "urn:ex:g", data_dir=data, database=database
    )
    assert r.returncode == 0, r.stderr
    r = twingraph(
        "ingest",
        "turtle",
        str(bad),
        "--graph",
        "urn:ex:g",
        "--merge",
        data_dir=data,
        database=database,
    )
    assert r.returncode == 1 and "validation_failed" in r.stderr
    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT graph, operation, author FROM revisions ORDER BY id"
        ).fetchall()
        failed = conn.execute(
            "SELECT type, ok FROM events WHERE type = 'validation.failed'"
        ).fetchall()
    assert rows == [("urn:ex:g", "replace", "cli")]
    assert failed == [("validation.failed", False)]

    r = twingraph(
        "query",
        "SELECT ?p WHERE { ?p a brick:Temperature_Sensor }",
        "--format",
        "json",
        data_dir=data,
    )
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["results"]["bindings"]
    assert [b["p"]["value"] for b in rows] == ["urn:ex:vav1-zat"]

    r = twingraph("graphs", data_dir=data)
    assert "urn:ex:g" in r.stdout and "13" in r.stdout

    r = twingraph("token", "create", "--scope", "write", data_dir=data)
    assert r.returncode == 0 and r.stdout.startswith("tg_")
    r = twingraph("token", "create", "--scope", "root", data_dir=data)
    assert r.returncode != 0
