"""The Explorer UI in headless Chromium against a running TwinGraph server.

The server is the suite's uvicorn over a real platform (on-disk Oxigraph, PostgreSQL) with
the demo building; anonymous reads are off, so the page is used the way a person with a
read token uses it. Readings are written over HTTP before and after the page loads.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from PIL import Image
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser.chromium import WINDOW, start_chromium
from tests.conftest import Server

# The UI does not depend on the store mode: one mode is enough.
pytestmark = pytest.mark.parametrize("store_mode", ["embedded"], indirect=True)

POINT_IRI = "urn:twingraph:demo:bldg/ahu-1/sat"
POINT_LABEL = "AHU-1 supply air temperature"
TREE_PATH = ("TwinGraph demo campus", "Demo office building", "Level 1", "Mechanical room", "AHU-1")


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """One browser for the module (starting Chromium is most of a test's time)."""
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: WebDriver) -> Iterator[WebDriver]:
    """The shared browser; each test starts without a token in sessionStorage."""
    yield chromium
    if chromium.current_url.startswith("http"):
        chromium.execute_script("window.sessionStorage.clear()")


def wait(driver: WebDriver, timeout: float = 10) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def write_readings(
    server: Server, point: uuid.UUID, readings: list[tuple[datetime, float]]
) -> None:
    body = {
        "readings": [{"point": str(point), "time": t.isoformat(), "value": v} for t, v in readings]
    }
    r = httpx.post(f"{server.url}/telemetry", json=body, headers=server.auth("write"), timeout=10)
    assert r.status_code == 200, r.text
    assert r.json()["inserted"] == len(readings)


def tree_item(driver: WebDriver, label: str) -> WebElement:
    xpath = f"//li[@role='treeitem'][./div[@class='row']/a[normalize-space()='{label}']]"
    return wait(driver).until(lambda d: d.find_element(By.XPATH, xpath))


def expand(driver: WebDriver, label: str) -> None:
    item = tree_item(driver, label)
    item.find_element(By.CSS_SELECTOR, ":scope > .row > .twisty").click()
    wait(driver).until(lambda _: item.get_attribute("data-loaded") == "true")


def chart_count(driver: WebDriver) -> int:
    found = driver.find_elements(By.ID, "chart")
    return int(found[0].get_attribute("data-count") or 0) if found else 0


#: Pixels of the chart's canvas drawn in the series' stroke colour (#1d4ed8 in chart.js).
STROKE_PIXELS_JS = """
const canvas = document.querySelector('#chart canvas');
const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
let n = 0;
for (let i = 0; i < data.length; i += 4) {
  if (Math.abs(data[i] - 29) < 12 && Math.abs(data[i + 1] - 78) < 12
      && Math.abs(data[i + 2] - 216) < 12 && data[i + 3] > 200) n += 1;
}
return n;
"""


def assert_not_blank(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 10_000
    with Image.open(path) as image:
        assert image.format == "PNG"
        assert image.size[0] >= WINDOW[0] // 2 and image.size[1] >= WINDOW[1] // 2
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50, "the screenshot is (nearly) one colour"
    # No single colour covers (almost) the whole page.
    assert max(count for count, _ in colours) < 0.97 * image.size[0] * image.size[1]


def test_tree_to_point_chart_updates_live(
    server: Server, browser: WebDriver, tmp_path: Path
) -> None:
    ref = server.platform.points.resolve(POINT_IRI)
    assert ref is not None
    now = datetime.now(UTC)
    before = [(now - timedelta(seconds=10 * (30 - i)), 20.0 + i / 10) for i in range(30)]
    write_readings(server, ref.uuid, before)

    browser.get(f"{server.url}/explorer")
    # Anonymous reads are off here: the page says a token is needed.
    banner = wait(browser).until(lambda d: d.find_element(By.ID, "banner"))
    wait(browser).until(lambda _: banner.is_displayed() and "token_required" in banner.text)
    browser.find_element(By.ID, "token-input").send_keys(server.read)
    browser.find_element(By.ID, "token-use").click()
    wait(browser).until(lambda _: not banner.is_displayed())
    assert browser.find_element(By.ID, "token-state").text == "token set"

    for label in TREE_PATH:
        expand(browser, label)
    point = tree_item(browser, POINT_LABEL)
    assert point.get_attribute("data-kind") == "Point"
    point.find_element(By.CSS_SELECTOR, "a.label").click()

    wait(browser).until(lambda d: d.find_element(By.ID, "detail-label").text == POINT_LABEL)
    wait(browser).until(lambda d: chart_count(d) >= len(before))
    canvas = browser.find_element(By.CSS_SELECTOR, "#chart canvas")
    assert canvas.size["width"] > 300 and canvas.size["height"] > 100
    # uPlot drew the series: a line of a few hundred pixels in its colour.
    assert browser.execute_script(STROKE_PIXELS_JS) > 200
    assert browser.find_element(By.ID, "detail-iri").text == POINT_IRI
    assert "brick:Supply_Air_Temperature_Sensor" in browser.find_element(By.ID, "detail-types").text

    # A reading written after the page loaded reaches the chart by itself.
    fresh = datetime.now(UTC)
    write_readings(server, ref.uuid, [(fresh, 87.5)])
    wait(browser, 8).until(
        lambda d: d.find_element(By.ID, "chart").get_attribute("data-last-value") == "87.5"
    )
    assert chart_count(browser) >= len(before) + 1
    assert browser.find_element(By.ID, "latest-value").text == "87.50"

    shot = tmp_path / "explorer.png"
    assert browser.save_screenshot(str(shot))
    assert_not_blank(shot)


def test_search_by_label_and_class(server: Server, browser: WebDriver) -> None:
    browser.get(f"{server.url}/explorer")
    browser.find_element(By.ID, "token-input").send_keys(server.read)
    browser.find_element(By.ID, "token-use").click()
    browser.find_element(By.ID, "search-text").send_keys("AHU-1 supply air")
    browser.find_element(By.ID, "search-class").send_keys("Supply_Air_Temperature_Sensor")
    browser.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    wait(browser).until(lambda d: d.find_elements(By.ID, "search-count"))
    found = browser.find_elements(By.CSS_SELECTOR, "#search-results li")
    ids = [li.get_attribute("data-id") or "" for li in found]
    # Other test modules load their own copies of the demo building into the same store:
    # every copy's AHU-1 supply air sensor matches, and nothing else does.
    assert POINT_IRI in ids and all(i.endswith("/ahu-1/sat") for i in ids), ids
    found[ids.index(POINT_IRI)].find_element(By.TAG_NAME, "a").click()
    wait(browser).until(lambda d: d.find_element(By.ID, "detail-label").text == POINT_LABEL)


def test_sparql_editor_runs_queries_and_shows_problems(
    server: Server, demo_graph: str, browser: WebDriver, tmp_path: Path
) -> None:
    browser.get(f"{server.url}/explorer/sparql")
    browser.find_element(By.ID, "token-input").send_keys(server.read)
    browser.find_element(By.ID, "token-use").click()

    # The named queries are offered as examples, with their text.
    examples = Select(browser.find_element(By.ID, "examples"))
    wait(browser).until(lambda _: len(examples.options) > len(server.platform.queries))
    examples.select_by_value("ahus/list")
    editor = browser.find_element(By.ID, "query")
    assert editor.get_attribute("value") == server.platform.queries["ahus/list"].text

    editor.clear()
    editor.send_keys(
        f"SELECT ?ahu ?label WHERE {{ GRAPH <{demo_graph}> {{ "
        "?ahu a brick:Air_Handling_Unit ; rdfs:label ?label } } ORDER BY ?label"
    )
    browser.find_element(By.ID, "run").click()
    wait(browser).until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results-table tbody tr"))
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#results-table th")]
    assert headers == ["?ahu", "?label"]
    rows = browser.find_elements(By.CSS_SELECTOR, "#results-table tbody tr")
    cells = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in rows]
    assert cells == [
        ["<urn:twingraph:demo:bldg/ahu-1>", "AHU-1"],
        ["<urn:twingraph:demo:bldg/ahu-2>", "AHU-2"],
    ]
    assert browser.find_element(By.ID, "status").text.startswith("2 rows")
    shot = tmp_path / "sparql.png"
    assert browser.save_screenshot(str(shot))
    assert_not_blank(shot)

    # A syntax error comes back as problem+json and is shown, not a blank table.
    editor.clear()
    editor.send_keys("SELECT * WHERE { ?s ?p }")
    browser.find_element(By.ID, "run").click()
    error = browser.find_element(By.ID, "error")
    wait(browser).until(lambda _: error.is_displayed())
    assert "400 sparql_syntax_error" in error.text
    assert "line 1" in error.text
    assert not browser.find_elements(By.CSS_SELECTOR, "#results-table")
