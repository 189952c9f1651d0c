"""The Haystack API (/haystack) over a running server: ops in Zinc and JSON, filters, refs,
history with rollups, watches, SCRAM logins and error grids."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import json
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn
from rich.console import Console

from app.main import create_app
from app.security.haystack_users import HaystackUsers, users_path
from app.security.tokens import Scope
from app.telemetry.ports import free_port
from ingest.haystack.cli import run_haystack_ingest
from ingest.haystack.client import HaystackClient, HaystackClientError
from ingest.haystack.json_formats import parse_json
from ingest.haystack.readers import read_records
from ingest.haystack.values import MARKER, DateTime, Grid, Number, Record, Ref
from ingest.haystack.writers import make_grid, to_hayson, to_json3, to_zinc
from ingest.haystack.zinc import parse_zinc
from tests.conftest import Server

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "haystack" / "mini.trio"
ZINC = "text/zinc"
PASSWORD = "correct horse battery"


@dataclasses.dataclass
class Site:
    server: Server
    graph: str
    records: dict[str, Record]
    reader: str  # Haystack user names
    writer: str

    @property
    def url(self) -> str:
        return self.server.url + "/haystack/"


@pytest.fixture(scope="module")
def site(server: Server) -> Site:
    platform = server.platform
    graph = "urn:twingraph:model:haystack-api-mini"
    run_haystack_ingest(platform, FIXTURE, graph, None, Console(file=io.StringIO()))
    users = HaystackUsers(users_path(platform.settings.data_dir))
    suffix = uuid.uuid4().hex[:6]
    reader, writer = f"reader-{suffix}", f"writer-{suffix}"
    users.add(reader, PASSWORD, Scope.READ, iterations=4096)
    users.add(writer, PASSWORD, Scope.WRITE, iterations=4096)
    records = {r["id"].id: r for r in read_records(FIXTURE)}  # type: ignore[union-attr]
    return Site(server, graph, records, reader, writer)


def call(
    site: Site,
    op: str,
    grid: Grid | None = None,
    *,
    scope: str = "read",
    accept: str = ZINC,
    params: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {"Accept": accept, **site.server.auth(scope)}
    if grid is None:
        return httpx.get(site.url + op, params=params, headers=headers, timeout=30)
    headers["Content-Type"] = ZINC
    return httpx.post(site.url + op, content=to_zinc(grid), headers=headers, timeout=30)


def grid_of(response: httpx.Response) -> Grid:
    if response.headers["content-type"].startswith("application/json"):
        return parse_json(response.text)
    return parse_zinc(response.text)


def ok(response: httpx.Response) -> Grid:
    assert response.status_code == 200, response.text
    grid = grid_of(response)
    assert "err" not in grid.meta
    return grid


def error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    grid = grid_of(response)
    assert grid.meta.get("err") == MARKER
    assert isinstance(grid.meta.get("errTrace"), str)
    dis = grid.meta["dis"]
    assert isinstance(dis, str)
    return dis


def _without_live(record: Record) -> Record:
    return {k: v for k, v in record.items() if k not in ("curVal", "curStatus")}


# -- about, ops, formats, negotiation ---------------------------------------------------


def test_about_ops_formats_in_zinc_and_json(site: Site) -> None:
    about = ok(call(site, "about")).rows[0]
    assert about["productName"] == "TwinGraph" and about["haystackVersion"] == "4.0"
    assert isinstance(about["serverTime"], DateTime)
    hayson = call(site, "about", accept="application/json")
    assert hayson.headers["content-type"] == "application/json"
    assert json.loads(hayson.text)["rows"][0]["serverTime"]["_kind"] == "dateTime"
    v3 = call(site, "about", accept="application/json; v=3")
    assert json.loads(v3.text)["rows"][0]["serverTime"].startswith("t:")
    ops = {r["name"] for r in ok(call(site, "ops")).rows}
    assert {"read", "nav", "hisRead", "hisWrite", "watchSub", "watchPoll", "close"} <= ops
    mimes = {r["mime"] for r in ok(call(site, "formats")).rows}
    assert {"text/zinc", "application/json"} <= mimes


def test_error_grids_carry_http_status(site: Site) -> None:
    assert "Unknown Haystack op" in error(call(site, "noSuchOp"), 404)
    assert "filter" in error(call(site, "read", params={"filter": "site and"}), 400).lower()
    assert "POST" in error(call(site, "hisWrite"), 405)
    error(call(site, "about", accept="image/png"), 406)
    bad_type = httpx.post(
        site.url + "read",
        content=b"id\n@x\n",
        headers={"Content-Type": "text/csv", **site.server.auth("read")},
    )
    error(bad_type, 415)
    bad_zinc = httpx.post(
        site.url + "read",
        content=b'ver:"3.0"\nid\n@x "unterminated\n',
        headers={"Content-Type": ZINC, **site.server.auth("read")},
    )
    assert "Bad request grid" in error(bad_zinc, 400)
    unknown = ok(call(site, "read", make_grid([{"id": Ref("tg-mini-site")}, {"id": Ref("no")}])))
    assert unknown.rows[1] == {}  # unknown ids: empty rows, as clients expect


def test_reads_need_a_token_unless_anonymous_reads_are_on(site: Site) -> None:
    response = httpx.get(site.url + "about")
    assert "scope" in error(response, 401)
    assert response.headers["www-authenticate"].startswith("SCRAM")
    bad = httpx.get(site.url + "about", headers={"Authorization": "BEARER authToken=tg_x_y"})
    assert "log in again" in error(bad, 401)


# -- read and nav ---------------------------------------------------------------------


def test_read_by_filter_gives_the_original_records(site: Site) -> None:
    rows = ok(call(site, "read", params={"filter": "siteRef==@tg-mini-site"})).rows
    got = {r["id"].id: r for r in rows}  # type: ignore[union-attr]
    expected = {k: v for k, v in site.records.items() if "siteRef" in v}
    assert set(got) == set(expected)
    for hid, record in expected.items():
        assert _without_live(got[hid]) == _without_live(record), hid
        assert got[hid]["id"].dis == record["id"].dis  # type: ignore[union-attr]
    # path filters follow refs; comparisons honour units and kinds
    ahu_points = ok(
        call(site, "read", params={"filter": "point and equipRef->ahu and siteRef==@tg-mini-site"})
    ).rows
    assert {r["id"].id for r in ahu_points} == {"tg-mini-dat", "tg-mini-fan"}  # type: ignore[union-attr]
    recent = call(site, "read", params={"filter": 'yearBuilt > 1990 and geoCity == "Richmond"'})
    # Other tests' sites share the store: every match must satisfy the filter, ours included.
    matched = ok(recent).rows
    assert "tg-mini-site" in {r["id"].id for r in matched}  # type: ignore[union-attr]
    assert all(r["geoCity"] == "Richmond" and r["yearBuilt"].value > 1990 for r in matched)  # type: ignore[union-attr]
    limited = ok(call(site, "read", params={"filter": "siteRef==@tg-mini-site", "limit": "2"}))
    assert len(limited.rows) == 2


def test_read_by_ids_in_json(site: Site) -> None:
    request = make_grid([{"id": Ref("tg-mini-oat")}, {"id": Ref("tg-mini-ahu1")}])
    response = httpx.post(
        site.url + "read",
        content=to_hayson(request),
        headers={"Content-Type": "application/json", "Accept": "application/json"}
        | site.server.auth("read"),
    )
    rows = ok(response).rows
    assert [r["id"].id for r in rows] == ["tg-mini-oat", "tg-mini-ahu1"]  # type: ignore[union-attr]
    assert rows[0]["weatherStationRef"] == Ref("tg-mini-wx")
    assert rows[1]["installed"] == dt.date(2019, 5, 1)


def test_native_brick_entities_get_tags_and_refs_from_brick(site: Site) -> None:
    """The demo building was never Haystack: its tags come from Brick classes."""
    sensors = ok(call(site, "read", params={"filter": "zone and air and temp and sensor"})).rows
    # Derived ("tg-") ids with a site: the demo building's (other tests load bare VAV
    # models, outside any site, into the same store).
    demo = [r for r in sensors if str(r["id"].id).startswith("tg-") and "siteRef" in r]  # type: ignore[union-attr]
    assert demo, "the demo building's zone air temperature sensors"
    point = demo[0]
    assert {"point", "his", "zone", "air", "temp", "sensor"} <= set(point)
    assert point["unit"] in ("°F", "°C")
    equip = ok(call(site, "read", make_grid([{"id": point["equipRef"]}]))).rows[0]
    assert "equip" in equip and "vav" in equip
    assert equip["siteRef"] == point["siteRef"]
    site_row = ok(call(site, "read", make_grid([{"id": point["siteRef"]}]))).rows[0]
    assert "site" in site_row
    floors = ok(call(site, "read", params={"filter": f"floor and siteRef==@{point['siteRef'].id}"}))
    assert len(floors.rows) == 3  # the demo fixture has three levels
    ahus = ok(
        call(site, "read", params={"filter": f"ahu and siteRef==@{point['siteRef'].id}"})
    ).rows
    assert ahus and all("equip" in r for r in ahus)


def test_nav_walks_sites_equipment_points(site: Site) -> None:
    sites = ok(call(site, "nav")).rows
    mini = next(r for r in sites if r["id"] == Ref("tg-mini-site"))
    equips = ok(call(site, "nav", params={"navId": str(mini["navId"])})).rows
    assert {r["id"].id for r in equips} == {"tg-mini-ahu1", "tg-mini-vav1", "tg-mini-meter"}  # type: ignore[union-attr]
    points = ok(call(site, "nav", make_grid([{"navId": Ref("tg-mini-ahu1")}]))).rows
    assert {r["id"].id for r in points} == {"tg-mini-dat", "tg-mini-fan"}  # type: ignore[union-attr]


# -- history ---------------------------------------------------------------------------


def _his(point: str, rows: list[tuple[dt.datetime, object]]) -> Grid:
    return make_grid(
        [{"ts": DateTime(t, "UTC"), "val": v} for t, v in rows],  # type: ignore[misc]
        {"id": Ref(point)},
        columns=["ts", "val"],
    )


def test_his_write_then_read_raw_and_rolled_up(site: Site) -> None:
    t0 = dt.datetime(2031, 3, 4, 12, tzinfo=dt.UTC)
    values = [(t0 + dt.timedelta(minutes=15 * i), Number(50.0 + i, "°F")) for i in range(8)]
    forbidden = call(site, "hisWrite", _his("tg-mini-dat", values), scope="read")
    assert "write" in error(forbidden, 403)
    written = ok(call(site, "hisWrite", _his("tg-mini-dat", values), scope="write"))
    assert written.meta["written"] == Number(8.0) or written.meta["duplicates"] == Number(8.0)
    wrong_unit = _his("tg-mini-dat", [(t0, Number(10.0, "°C"))])
    assert "unit" in error(call(site, "hisWrite", wrong_unit, scope="write"), 400)

    raw = ok(call(site, "hisRead", params={"id": "@tg-mini-dat", "range": "2031-03-04"}))
    assert raw.meta["id"] == Ref("tg-mini-dat")
    assert [r["val"] for r in raw.rows] == [v for _, v in values]
    first_ts = raw.rows[0]["ts"]
    assert isinstance(first_ts, DateTime) and first_ts.tz == "New_York"  # the point's zone
    assert first_ts.value == t0

    hourly = call(
        site,
        "hisRead",
        make_grid(
            [
                {
                    "id": Ref("tg-mini-dat"),
                    "range": "2031-03-04",
                    "interval": Number(1, "h"),
                    "rollup": "max",
                }
            ]
        ),
    )
    assert [r["val"] for r in ok(hourly).rows] == [Number(53.0, "°F"), Number(57.0, "°F")]
    avg = ok(
        call(
            site, "hisRead", params={"id": "@tg-mini-dat", "range": "2031-03-04", "interval": "2h"}
        )
    )
    assert [r["val"] for r in avg.rows] == [Number(53.5, "°F")]
    assert avg.meta["rollup"] == "avg"
    counted = ok(
        call(
            site,
            "hisRead",
            params={
                "id": "@tg-mini-dat",
                "range": "2031-03-04",
                "interval": "1h",
                "rollup": "count",
            },
        )
    )
    assert [r["val"] for r in counted.rows] == [Number(4.0), Number(4.0)]
    span = "2031-03-04T13:00:00Z UTC,2031-03-04T13:30:00Z UTC"
    window = ok(call(site, "hisRead", params={"id": "@tg-mini-dat", "range": span}))
    assert [r["val"] for r in window.rows] == [Number(54.0, "°F"), Number(55.0, "°F")]
    bad = call(
        site, "hisRead", params={"id": "@tg-mini-dat", "range": "2031-03-04", "interval": "1mo"}
    )
    assert "interval" in error(bad, 400)
    assert "unknown id" in error(
        call(site, "hisRead", params={"id": "@nope", "range": "today"}), 404
    )


def test_batch_his_read_and_kinds(site: Site) -> None:
    t0 = dt.datetime(2031, 5, 6, 12, tzinfo=dt.UTC)
    ok(
        call(
            site,
            "hisWrite",
            _his("tg-mini-fan", [(t0, True), (t0 + dt.timedelta(hours=1), False)]),
            scope="write",
        )
    )
    ok(call(site, "hisWrite", _his("tg-mini-occ", [(t0, "occupied")]), scope="write"))
    request = make_grid(
        [{"id": Ref("tg-mini-fan")}, {"id": Ref("tg-mini-occ")}], {"range": "2031-05-06"}
    )
    grid = ok(call(site, "hisRead", request))
    assert grid.columns == ["ts", "v0", "v1"]
    assert grid.column_meta["v0"]["id"] == Ref("tg-mini-fan")
    assert [(r.get("v0"), r.get("v1")) for r in grid.rows] == [(True, "occupied"), (False, None)]


# -- watches ---------------------------------------------------------------------------


def test_watch_reports_changed_current_values(site: Site) -> None:
    sub = make_grid(
        [{"id": Ref("tg-mini-zatsp")}, {"id": Ref("tg-mini-ahu1")}],
        {"watchDis": "test", "lease": Number(1, "min")},
    )
    opened = ok(call(site, "watchSub", sub))
    wid = opened.meta["watchId"]
    assert isinstance(wid, str) and len(opened.rows) == 2
    poll = make_grid([], {"watchId": wid})
    assert ok(call(site, "watchPoll", poll)).rows == []
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    ok(call(site, "hisWrite", _his("tg-mini-zatsp", [(now, Number(70.5, "°F"))]), scope="write"))
    changed = ok(call(site, "watchPoll", poll)).rows
    assert [r["id"].id for r in changed] == ["tg-mini-zatsp"]  # type: ignore[union-attr]
    assert changed[0]["curVal"] == Number(70.5, "°F")
    refresh = make_grid([], {"watchId": wid, "refresh": MARKER})
    assert len(ok(call(site, "watchPoll", refresh)).rows) == 2
    # another caller cannot poll it; closing it ends it
    assert "Unknown watch" in error(call(site, "watchPoll", poll, scope="write"), 404)
    ok(call(site, "watchUnsub", make_grid([], {"watchId": wid, "close": MARKER})))
    error(call(site, "watchPoll", poll), 404)


# -- SCRAM -----------------------------------------------------------------------------


def test_scram_login_maps_users_onto_scoped_tokens(site: Site) -> None:
    with HaystackClient.open(site.url, site.reader, PASSWORD) as client:
        assert client.token and client.token.startswith("tg_")
        assert client.about()["userName"] == f"haystack:{site.reader}"
        assert client.read_ids(["tg-mini-site"])[0]["dis"] == "Mini Site"
        token = client.token
        with pytest.raises(HaystackClientError) as denied:
            client.call("hisWrite", _his("tg-mini-dat", []))
        assert denied.value.status == 403
    # close revoked the session token
    after = httpx.get(site.url + "about", headers={"Authorization": f"BEARER authToken={token}"})
    error(after, 401)
    for user, password in ((site.reader, "wrong password!"), ("nobody-" + site.reader, PASSWORD)):
        with pytest.raises(HaystackClientError) as failed:
            HaystackClient.open(site.url, user, password)
        assert failed.value.status == 403
    with HaystackClient.open(site.url, site.writer, PASSWORD) as writer:
        t = dt.datetime(2031, 7, 1, 12, tzinfo=dt.UTC)
        writer.call("hisWrite", _his("tg-mini-kwh", [(t, Number(12.0, "kWh"))]))
        assert writer.his_read("tg-mini-kwh", "2031-07-01").rows[0]["val"] == Number(12.0, "kWh")


def test_a_handshake_finishes_once(site: Site) -> None:
    from app.security import scram

    hello = httpx.get(
        site.url + "about", headers={"Authorization": f"HELLO username={scram.b64url(site.reader)}"}
    )
    token = hello.headers["www-authenticate"].split("handshakeToken=")[1].split(",")[0]
    client = scram.ScramClient(site.reader, PASSWORD)
    first = httpx.get(
        site.url + "about",
        headers={
            "Authorization": f"SCRAM handshakeToken={token}, data={scram.b64url(client.first())}"
        },
    )
    data = first.headers["www-authenticate"].split("data=")[1].strip()
    final = client.final(scram.b64decode_any(data).decode())
    header = {"Authorization": f"SCRAM handshakeToken={token}, data={scram.b64url(final)}"}
    done = httpx.get(site.url + "about", headers=header)
    assert done.status_code == 200 and "authToken=" in done.headers["authentication-info"]
    error(httpx.get(site.url + "about", headers=header), 403)  # replayed


# -- anonymous reads -------------------------------------------------------------------


@pytest.fixture(scope="module")
def anonymous_url(server: Server) -> Iterator[str]:
    platform = server.platform
    settings = platform.settings.model_copy(update={"anonymous_read": True})
    shared = dataclasses.replace(platform, settings=settings, _closers=[])
    app = create_app(platform=shared)
    # No lifespan: the session's server already runs the platform's background services.
    app.state.platform = shared
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/haystack/"
    srv.should_exit = True
    thread.join(10)


def test_anonymous_reads_when_switched_on(site: Site, anonymous_url: str) -> None:
    rows = parse_zinc(
        httpx.get(anonymous_url + "read", params={"filter": "id==@tg-mini-site"}).text
    ).rows
    assert [r["dis"] for r in rows] == ["Mini Site"]
    hw = httpx.post(
        anonymous_url + "hisWrite",
        content=to_zinc(_his("tg-mini-dat", [])),
        headers={"Content-Type": ZINC},
    )
    assert hw.status_code == 401


# -- the parts on their own -------------------------------------------------------------


def test_scram_matches_the_rfc_7677_example() -> None:
    from app.security import scram

    client = scram.ScramClient("user", "pencil", nonce="rOprNGfwEbeRWgbNEkqO")
    assert client.first() == "n,,n=user,r=rOprNGfwEbeRWgbNEkqO"
    server_first = (
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    )
    final = client.final(server_first)
    assert final == (
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
        "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
    )
    creds = scram.derive(
        "pencil", salt=scram.b64decode_any("W22ZaJ0SNY7soEsUEjb6gQ=="), iterations=4096
    )
    server_final = scram.verify_client_final(
        final,
        client_first_bare="n=user,r=rOprNGfwEbeRWgbNEkqO",
        server_first_message=server_first,
        nonce="rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        credentials=creds,
    )
    assert server_final == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    client.verify(server_final)
    with pytest.raises(scram.ScramError):
        scram.verify_client_final(
            final.replace("p=dH", "p=dI"),
            client_first_bare="n=user,r=rOprNGfwEbeRWgbNEkqO",
            server_first_message=server_first,
            nonce="rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            credentials=creds,
        )


def test_filters_parse_and_match() -> None:
    from app.api.haystack.filter import FilterSyntaxError, matches, parse_filter

    site: Record = {"id": Ref("s"), "site": MARKER, "area": Number(1000, "ft²")}
    ahu: Record = {"id": Ref("a"), "equip": MARKER, "ahu": MARKER, "siteRef": Ref("s")}
    pt: Record = {"id": Ref("p"), "point": MARKER, "equipRef": Ref("a"), "curVal": Number(70, "°F")}
    db = {"s": site, "a": ahu, "p": pt}

    def ok_(text: str, record: Record) -> bool:
        return matches(parse_filter(text), record, db.get)

    assert ok_("point and equipRef->siteRef->area > 500ft²", pt)
    assert not ok_("point and equipRef->siteRef->area > 500m²", pt)  # units differ
    assert ok_("not his and (site or equip)", ahu) and not ok_("not equipRef", pt)
    assert ok_("curVal >= 70 and curVal < 70.5°F", pt)
    assert ok_("id == @p and equipRef != @s", pt) and ok_("^ahu", ahu)
    assert ok_("site or point", site) and not ok_("site and point", site)
    for bad in ("", "point and", "(site", "site ==", "curVal > [1]", "and site"):
        with pytest.raises(FilterSyntaxError):
            parse_filter(bad)


def test_his_ranges_are_read_in_the_points_zone() -> None:
    from zoneinfo import ZoneInfo

    from app.api.haystack.history import parse_interval, parse_range
    from app.errors import InvalidInputError

    ny = ZoneInfo("America/New_York")
    now = dt.datetime(2024, 3, 10, 12, tzinfo=dt.UTC)
    today = parse_range("today", ny, now=now)
    assert today.start == dt.datetime(2024, 3, 10, tzinfo=ny)
    assert today.end.astimezone(dt.UTC) - today.start.astimezone(dt.UTC) == dt.timedelta(
        hours=23
    )  # the spring DST change
    days = parse_range("2024-01-01,2024-01-02", ny)
    assert (days.start, days.end) == (
        dt.datetime(2024, 1, 1, tzinfo=ny),
        dt.datetime(2024, 1, 3, tzinfo=ny),
    )
    span = parse_range("2024-01-01T00:00:00Z UTC,2024-01-01T06:00:00-05:00 New_York", ny)
    assert span.end.astimezone(dt.UTC) - span.start == dt.timedelta(hours=11)
    assert parse_interval(Number(15, "min")) == dt.timedelta(minutes=15)
    assert parse_interval("1day") == dt.timedelta(days=1)
    for bad in ("2024-13-01", "2024-01-02,2024-01-01", "soon"):
        with pytest.raises(InvalidInputError):
            parse_range(bad, ny, now=now)


def test_writers_round_trip_every_kind() -> None:
    from ingest.haystack.values import NA_VALUE, REMOVE, Coord, Symbol, Uri, XStr

    row: Record = {
        "id": Ref("x-1", 'Quote " and \\ back'),
        "m": MARKER,
        "na": NA_VALUE,
        "rm": REMOVE,
        "t": True,
        "s": "line\nbreak, comma \u00e9 \u2713",
        "n": Number(-1.5e-7, "m³/h"),
        "i": Number(42),
        "nan": Number(float("nan")),
        "inf": Number(float("-inf")),
        "u": Uri("http://example.org/a b`c"),
        "y": Symbol("elecMeter"),
        "c": Coord(37.5, -77.25),
        "x": XStr("Span", "today"),
        "d": dt.date(2024, 2, 29),
        "h": dt.time(23, 59, 58, 500000),
        "ts": DateTime(dt.datetime(2024, 7, 1, 12, tzinfo=ZoneInfoNY()), "New_York"),
        "l": [Number(1), "two", Ref("three")],
        "dict": {"a": MARKER, "b": Number(2, "kW")},
    }
    grid = make_grid([row], {"dis": "meta"})
    assert parse_zinc(to_zinc(grid)).rows == [row]
    assert parse_json(to_hayson(grid)).rows == [row]
    json3 = parse_json(to_json3(grid)).rows[0]
    assert json3 == {k: v for k, v in row.items() if k != "dict"} | {"dict": row["dict"]}


def ZoneInfoNY() -> dt.tzinfo:  # noqa: N802
    from zoneinfo import ZoneInfo

    return ZoneInfo("America/New_York")
