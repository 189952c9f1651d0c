"""The explorer's routes over HTTP: pages, allow-listed files, the examples endpoint."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.api import problems
from app.ui import explorer_router
from tests.conftest import Server

#: The routes do not depend on the store mode: one mode is enough.
embedded = pytest.mark.parametrize("store_mode", ["embedded"], indirect=True)


@embedded
def test_pages_and_modules_are_served(server: Server) -> None:
    for path, marker in (("/explorer", 'id="tree"'), ("/explorer/sparql", 'id="query"')):
        r = httpx.get(server.url + path, timeout=10)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert marker in r.text
    r = httpx.get(f"{server.url}/explorer/static/live.js", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    assert "export function watchReadings" in r.text
    assert '<a href="/explorer">' in httpx.get(server.url + "/", timeout=10).text


@embedded
def test_the_chart_library_comes_from_ui_node_modules(server: Server) -> None:
    r = httpx.get(f"{server.url}/explorer/vendor/uPlot.esm.js", timeout=10)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    vendor = server.platform.settings.ui_vendor_dir
    assert r.content == (vendor / "uplot/dist/uPlot.esm.js").read_bytes()


@embedded
@pytest.mark.parametrize(
    "path",
    [
        "/explorer/static/router.py",
        "/explorer/static/..%2Frouter.py",
        "/explorer/vendor/uplot%2Fpackage.json",
        "/explorer/vendor/nothing.js",
    ],
)
def test_only_listed_files_are_served(server: Server, path: str) -> None:
    r = httpx.get(server.url + path, timeout=10)
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/problem+json"


@embedded
def test_examples_need_a_reader_and_carry_query_texts(server: Server) -> None:
    anonymous = httpx.get(f"{server.url}/explorer/api/examples", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == "token_required"
    r = httpx.get(f"{server.url}/explorer/api/examples", headers=server.auth("read"), timeout=10)
    assert r.status_code == 200
    body = r.json()
    by_name = {q["name"]: q for q in body["queries"]}
    assert by_name.keys() == server.platform.queries.keys()
    assert by_name["ahus/list"]["text"] == server.platform.queries["ahus/list"].text
    assert body["prefixes"]["brick"] == "https://brickschema.org/schema/Brick#"


def test_missing_vendor_files_say_how_to_install_them(tmp_path: Path) -> None:
    app = FastAPI()
    problems.install(app)
    app.include_router(explorer_router(vendor_dir=tmp_path / "node_modules"))

    async def get() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://ui") as client:
            return await client.get("/explorer/vendor/uPlot.esm.js")

    r = asyncio.run(get())
    assert r.status_code == 503
    assert r.json()["code"] == "ui_vendor_missing" and "make install" in r.json()["detail"]
