"""Haystack over the wire with implementations that are not ours.

- phable (a Haystack client on PyPI) logs in to a running TwinGraph with SCRAM, reads by
  filter and ids, writes and reads history, in Zinc and JSON.
- rusty-haystack's client does the same from Rust; its server (a separate process, SCRAM
  users in TOML) is what ``twingraph ingest haystack --url`` reads from, so the live ingest
  is not only tested against our own server.
- The live ingest against our own server gives exactly the triples of a file ingest, and
  re-running it changes nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import phable
import pytest
import rusty_haystack as rh
from pyoxigraph import BlankNode, RdfFormat, parse, serialize
from rich.console import Console

from app.graph.remote import RemoteStore
from app.platform import Platform
from app.security import scram
from app.security.haystack_users import HaystackUsers, users_path
from app.security.tokens import Scope
from app.telemetry.ports import free_port
from app.telemetry.readings import TelemetryStore
from ingest.haystack.cli import run_haystack_ingest
from ingest.haystack.client import HaystackClient
from ingest.haystack.job import haystack_to_triples
from ingest.haystack.live import run_live_ingest, stable
from ingest.haystack.readers import read_records
from ingest.haystack.values import Ref
from ingest.haystack.writers import make_grid, to_zinc
from tests.conftest import PgServer, Server, run_cli, shared_data

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "haystack" / "mini.trio"
PASSWORD = "phable-secret-42"
GRAPH = "urn:twingraph:model:haystack-live-mini"
DAY = dt.datetime(2032, 2, 3, 15, tzinfo=dt.UTC)  # inside 2032-02-03 in New York


@pytest.fixture(scope="module")
def hs(server: Server) -> tuple[Server, str]:
    """The fixture site on the server, history for two points, and a Haystack user."""
    platform = server.platform
    run_haystack_ingest(platform, FIXTURE, GRAPH, None, Console(file=io.StringIO()))
    user = f"phable-{uuid.uuid4().hex[:6]}"
    # the default iteration count: what a real deployment makes clients pay at login
    HaystackUsers(users_path(platform.settings.data_dir)).add(user, PASSWORD, Scope.WRITE)
    assert platform.telemetry is not None
    dat = platform.points.resolve("tg-mini-dat")
    fan = platform.points.resolve("tg-mini-fan")
    assert dat is not None and fan is not None
    from app.domain.telemetry import Reading

    readings = [Reading(dat.uuid, DAY + dt.timedelta(minutes=10 * i), 60.0 + i) for i in range(6)]
    readings += [
        Reading(fan.uuid, DAY, True),
        Reading(fan.uuid, DAY + dt.timedelta(hours=1), False),
    ]
    platform.telemetry.write(readings=readings)
    return server, user


def _timed(fn: object, runs: int = 5) -> float:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


@pytest.mark.parametrize("content_type", ["json", "zinc"])
def test_phable_reads_and_his_reads(hs: tuple[Server, str], content_type: str) -> None:
    server, user = hs
    uri = server.url + "/haystack"
    t0 = time.perf_counter()
    client = phable.HaystackClient.open(uri, user, PASSWORD, content_type=content_type)
    login_s = time.perf_counter() - t0
    try:
        about = client.about()
        assert about["productName"] == "TwinGraph"
        grid = client.read_all("point and siteRef==@tg-mini-site")
        assert {r["id"].val for r in grid.rows} == {
            "tg-mini-dat",
            "tg-mini-zatsp",
            "tg-mini-fan",
            "tg-mini-occ",
            "tg-mini-kwh",
            "tg-mini-oat",
        }
        one = client.read("id==@tg-mini-dat")
        assert one["unit"] == "°F" and one["equipRef"].val == "tg-mini-ahu1"
        assert one["curVal"] == phable.Number(65.0, "°F")  # the latest reading
        by_ids = client.read_by_ids([phable.Ref("tg-mini-ahu1"), phable.Ref("tg-mini-vav1")])
        assert [r["dis"] for r in by_ids.rows] == ["AHU-1", "VAV-1"]
        with pytest.raises(phable.UnknownRecError):
            client.read_by_ids([phable.Ref("tg-mini-ahu1"), phable.Ref("no-such-id")])

        his = client.his_read_by_id(phable.Ref("tg-mini-dat"), dt.date(2032, 2, 3))
        assert [r["val"] for r in his.rows] == [phable.Number(60.0 + i, "°F") for i in range(6)]
        first = his.rows[0]["ts"]
        assert first == DAY and str(first.tzinfo) == "America/New_York"
        batch = client.his_read_by_ids(
            [phable.Ref("tg-mini-dat"), phable.Ref("tg-mini-fan")], dt.date(2032, 2, 3)
        )
        assert [c.name for c in batch.cols] == ["ts", "v0", "v1"]
        assert batch.rows[0]["v1"] is True and batch.rows[0]["v0"] == phable.Number(60.0, "°F")
        span = phable.DateTimeRange(
            DAY.astimezone(ZoneInfo("America/New_York")),
            (DAY + dt.timedelta(minutes=30)).astimezone(ZoneInfo("America/New_York")),
        )
        assert len(client.his_read_by_id(phable.Ref("tg-mini-dat"), span).rows) == 3

        written_at = dt.datetime(2032, 2, 4, 15, tzinfo=ZoneInfo("America/New_York"))
        client.his_write_by_id(
            phable.Ref("tg-mini-kwh"), [{"ts": written_at, "val": phable.Number(42.0, "kWh")}]
        )
        back = client.his_read_by_id(phable.Ref("tg-mini-kwh"), dt.date(2032, 2, 4))
        assert [r["val"] for r in back.rows] == [phable.Number(42.0, "kWh")]
        # A bad filter: an error grid with HTTP 400; phable (urllib) raises on the status.
        with pytest.raises(urllib.error.HTTPError) as bad:
            client.read_all("point and")
        assert bad.value.code == 400 and b"err" in bad.value.read()
        read_s = _timed(lambda: client.read_all("point and siteRef==@tg-mini-site"))
        his_s = _timed(
            lambda: client.his_read_by_id(phable.Ref("tg-mini-dat"), dt.date(2032, 2, 3))
        )
    finally:
        client.close()
    print(
        f"\nphable ({content_type}): login {login_s * 1000:.0f} ms (100k PBKDF2 rounds), "
        f"read {read_s * 1000:.1f} ms, hisRead {his_s * 1000:.1f} ms (median of 5)"
    )
    with pytest.raises(phable.AuthError):
        phable.HaystackClient.open(uri, user, "wrong-password", content_type=content_type)


def test_rusty_haystack_client_reads_twingraph(hs: tuple[Server, str]) -> None:
    server, user = hs
    client = rh.client.HaystackClient.connect(server.url + "/haystack", user, PASSWORD)
    try:
        rows = client.read("equip and siteRef==@tg-mini-site")
        assert sorted(r["id"].val for r in rows.rows()) == [
            "tg-mini-ahu1",
            "tg-mini-meter",
            "tg-mini-vav1",
        ]
        his = client.his_read("tg-mini-dat", "2032-02-03")
        assert [r["val"].val for r in his.rows()] == [60.0 + i for i in range(6)]
    finally:
        client.close()


# -- the live ingest ---------------------------------------------------------------------


def _canonical(lines: Iterable[bytes]) -> set[str]:
    """N-Triples with each blank node named by what it says (a remote store relabels them)."""
    triples = [q.triple for q in parse(b"\n".join(lines), format=RdfFormat.N_TRIPLES)]
    said: dict[str, list[str]] = {}
    for t in triples:
        if isinstance(t.subject, BlankNode):
            said.setdefault(t.subject.value, []).append(f"{t.predicate} {t.object}")
    names = {b: "_:" + "|".join(sorted(v)) for b, v in said.items()}

    def term(x: object) -> str:
        return names.get(x.value, str(x)) if isinstance(x, BlankNode) else str(x)

    return {f"{term(t.subject)} {t.predicate} {term(t.object)}" for t in triples}


def _graph(platform: Platform, graph: str) -> set[str]:
    return _canonical(platform.store.dump(graph, RdfFormat.N_TRIPLES).splitlines())


def _expected(path: Path, base: str | None = None) -> set[str]:
    """What a live ingest of a file's records gives: the records without live values, mapped."""
    triples = haystack_to_triples([stable(r) for r in read_records(path)], base=base).triples
    return _canonical(serialize(triples, format=RdfFormat.N_TRIPLES).splitlines())


def test_live_ingest_matches_file_ingest_and_is_idempotent(hs: tuple[Server, str]) -> None:
    server, user = hs
    platform = server.platform
    console = Console(file=io.StringIO(), width=200)
    target = "urn:twingraph:model:haystack-live-copy"
    with HaystackClient.open(server.url + "/haystack/", user, PASSWORD) as client:
        summary = run_live_ingest(
            platform,
            client,
            console,
            graph=target,
            filter_text="id==@tg-mini-site or siteRef==@tg-mini-site",
        )
        assert summary.records == 12
        expected = _expected(FIXTURE)
        assert _graph(platform, target) == expected
        again = run_live_ingest(
            platform,
            client,
            console,
            graph=target,
            filter_text="id==@tg-mini-site or siteRef==@tg-mini-site",
        )
    assert again.ingest.graph_triples == summary.ingest.graph_triples
    assert _graph(platform, target) == expected


def test_alpha_from_the_live_server_vs_from_file(hs: tuple[Server, str], store_mode: str) -> None:
    if store_mode == "remote":
        pytest.skip("alpha's figures are measured once, on the embedded store (2k records)")
    path = shared_data("haystack", "example_buildings", "alpha.json")
    if not path.is_file():
        pytest.skip(f"{path} is absent from ../shared/data")
    server, user = hs
    platform = server.platform
    console = Console(file=io.StringIO(), width=200)
    t0 = time.perf_counter()
    from_file = run_haystack_ingest(platform, path, "urn:twingraph:model:alpha-file", None, console)
    file_s = time.perf_counter() - t0
    site_record = next(r for r in read_records(path) if "site" in r)
    site, station = site_record["id"], site_record["weatherStationRef"]
    assert isinstance(site, Ref) and isinstance(station, Ref)
    alpha_only = (
        f"id==@{site.id} or siteRef==@{site.id} or id==@{station.id} "
        f"or weatherStationRef==@{station.id}"
    )
    with HaystackClient.open(server.url + "/haystack/", user, PASSWORD) as client:
        t0 = time.perf_counter()
        live = run_live_ingest(
            platform,
            client,
            console,
            graph="urn:twingraph:model:alpha-live",
            filter_text=alpha_only,
        )
        live_s = time.perf_counter() - t0
    assert live.mapping.counts == from_file.mapping.counts
    assert _graph(platform, "urn:twingraph:model:alpha-live") == _expected(path)
    print(
        f"\nalpha ({live.records} records): from file {file_s:.2f}s "
        f"({', '.join(f'{k} {v:.2f}s' for k, v in from_file.timings.items())}); "
        f"from the live server {live_s:.2f}s "
        f"({', '.join(f'{k} {v:.2f}s' for k, v in live.timings.items())})"
    )


# -- against a Haystack server that is not ours ------------------------------------------

RUSTY_BASE = "urn:twingraph:haystack:from-rusty/"
RUSTY_SERVER = """
import sys, time
import rusty_haystack as rh
zinc_path, users_path, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
graph = rh.SharedGraph.from_grid(rh.decode_grid("text/zinc", open(zinc_path).read()))
server = rh.server.HaystackServer(graph)
server.with_auth(rh.server.AuthManager.from_toml(users_path))
server.host("127.0.0.1")
server.port(port)
server.run()
"""


@pytest.fixture(scope="module")
def rusty_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """rusty-haystack's Haystack server (Rust, axum) as a separate process, SCRAM users."""
    folder = tmp_path_factory.mktemp("rusty-haystack")
    zinc = folder / "site.zinc"
    zinc.write_text(to_zinc(make_grid(read_records(FIXTURE))))
    creds = scram.derive("rusty-secret-42", iterations=10_000)
    b = base64.b64encode
    digest = ":".join(
        [
            b(creds.salt).decode(),
            str(creds.iterations),
            b(creds.stored_key).decode(),
            b(creds.server_key).decode(),
        ]
    )
    users = folder / "users.toml"
    users.write_text(
        f'[users.alice]\npassword_hash = "{digest}"\npermissions = ["read", "write"]\n'
    )
    script = folder / "serve.py"
    script.write_text(RUSTY_SERVER)
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(script), str(zinc), str(users), str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(url + "/about", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("the rusty-haystack server did not start")
    yield url
    proc.terminate()
    proc.wait(10)


def test_cli_ingests_from_an_independent_server(
    rusty_server: str,
    tmp_path: Path,
    pg_server: PgServer,
    telemetry_store: TelemetryStore,
    oxigraph_server: str,
) -> None:
    seed = rh.client.HaystackClient.connect(rusty_server, "alice", "rusty-secret-42")
    try:
        rows = [
            rh.HDict(
                {
                    "ts": rh.HDateTime(2033, 1, 2, 12, m, 0, 0, "UTC"),
                    "val": rh.Number(20.0 + m, "°F"),
                }
            )
            for m in (0, 15, 30)
        ]
        seed.his_write("tg-mini-oat", rows)
    finally:
        seed.close()
    env = {  # the session's Oxigraph server has the ontologies loaded already
        **os.environ,
        "TWINGRAPH_DATA_DIR": str(tmp_path),
        "TWINGRAPH_DATABASE_URL": pg_server.dsn,
        "TWINGRAPH_GRAPH_URL": oxigraph_server,
    }
    r = run_cli(
        "ingest",
        "haystack",
        "--url",
        rusty_server,
        "--user",
        "alice",
        "--password",
        "rusty-secret-42",
        "--graph",
        "urn:twingraph:model:from-rusty",
        "--base",
        RUSTY_BASE,
        "--his",
        "2033-01-02",  # rusty-haystack takes dates only
        env=env,
    )
    assert r.returncode == 0, r.stderr
    expected = haystack_to_triples([stable(r) for r in read_records(FIXTURE)])
    text = " ".join(r.stderr.split())
    assert "12 records from rusty-haystack" in text
    assert "points typed specifically: 6/6" in text
    assert "history: 3 readings (3 new)" in text or "history: 3 readings (0 new)" in text
    # the model read from rusty-haystack is the one the file gives
    store = RemoteStore(oxigraph_server)
    try:
        got = store.dump("urn:twingraph:model:from-rusty", RdfFormat.N_TRIPLES).splitlines()
    finally:
        store.close()
    assert _canonical(got) == _expected(FIXTURE, RUSTY_BASE)
    oat = expected.his_points["tg-mini-oat"]
    got = telemetry_store.range(
        point=oat,
        start=dt.datetime(2033, 1, 2, tzinfo=dt.UTC),
        end=dt.datetime(2033, 1, 3, tzinfo=dt.UTC),
    )
    assert [r.value for r in got] == [20.0, 35.0, 50.0]
    refused = run_cli(
        "ingest",
        "haystack",
        "--url",
        rusty_server,
        "--user",
        "alice",
        "--password",
        "wrong-one",
        env=env,
    )
    assert refused.returncode == 2 and "haystack_login_failed" in refused.stderr
