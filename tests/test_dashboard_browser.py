"""The dashboard in a real browser: headless Chromium (Debian `chromium` and
`chromium-driver`) driven by selenium, on a dashboard of runs we write
ourselves.  It checks each grid cell against the runs' results.json (colour
included), follows a cell to the run's page and a log link to the log, and
saves screenshots into the test's tmp directory.  Offline: file:// pages, and
Chromium started with everything that would reach the network switched off."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import run_series
from test_dashboard import demo_runs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")

COLOURS = {"pass": "rgba(217, 242, 217, 1)", "warn": "rgba(255, 242, 204, 1)", "fail": "rgba(248, 208, 208, 1)",
           "error": "rgba(248, 208, 208, 1)", "skip": "rgba(238, 238, 238, 1)"}


@pytest.fixture
def browser(tmp_path: Path):  # noqa: ANN201
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs Debian's chromium and chromium-driver (tools/setup installs them)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    opts = Options()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}",
              "--window-size=1400,1000"):
        opts.add_argument(a)
    drv = webdriver.Chrome(service=Service(DRIVER), options=opts)
    drv.set_page_load_timeout(60)
    try:
        yield drv
    finally:
        drv.quit()


def test_dashboard_in_chromium(tmp_path: Path, workspace: Path, browser) -> None:  # noqa: ANN001
    from selenium.webdriver.common.by import By
    cache = tmp_path / "cache"
    paths = demo_runs(cache / "runs")
    out = tmp_path / "dash"
    r = run_series("-C", str(workspace), "report", "-o", str(out), env={"SERIES_CACHE": str(cache)})
    assert r.rc == 0, r.err
    # the directory can be copied anywhere: load the copy, with the originals gone
    moved = tmp_path / "elsewhere" / "dash"
    shutil.copytree(out, moved)
    shutil.rmtree(out)
    shutil.rmtree(cache / "runs")

    browser.get((moved / "index.html").as_uri())
    assert browser.title == "series CI dashboard"
    browser.save_screenshot(str(tmp_path / "dashboard.png"))
    assert (tmp_path / "dashboard.png").stat().st_size > 10_000

    checked = 0
    for key in ("v1", "v2", "v3"):
        res = json.loads((moved / "runs" / paths[key].name / "results.json").read_text())
        by = {s["name"]: s for s in res["stages"]}
        row = browser.find_element(By.CSS_SELECTOR, f'table.grid[data-stack="demo"] tr[data-revision="{res["revision"]}"]')
        assert row.get_attribute("data-run") == paths[key].name
        for td in row.find_elements(By.CSS_SELECTOR, "td.cell"):
            col = td.get_attribute("data-col")
            if col in by:
                want = by[col]["status"]
            elif col.startswith("build:"):
                want = next(i["status"] for i in by["build"]["items"] if i["index"] == int(col.split(":")[1]))
            else:
                suite = col.split(":", 1)[1]
                want = "fail" if any(i["status"] == "fail" for i in by["test"]["items"]
                                     if i["name"].split("/")[0] == suite) else "pass"
            assert td.get_attribute("data-status") == want, (key, col)
            assert td.value_of_css_property("background-color") == COLOURS[want], (key, col)
            checked += 1
    assert checked == 3 * 9

    # a failing cell leads to that run's page, at the stage
    cell = browser.find_element(By.CSS_SELECTOR, 'table.grid[data-stack="demo"] tr[data-revision="2"] '
                                                 'td[data-col="suite:suite-a"] a')
    cell.click()
    assert browser.current_url.endswith(f"runs/{paths['v2'].name}/index.html#stage-test")
    assert browser.find_element(By.ID, "run-status").text.lower() == "fail"
    stage_row = browser.find_element(By.ID, "stage-test")
    assert "fail" in stage_row.text
    browser.save_screenshot(str(tmp_path / "run-page.png"))

    # its log links resolve inside the copied directory
    links = browser.find_elements(By.CSS_SELECTOR, "a.log")
    hrefs = [a.get_attribute("href") for a in links]
    assert hrefs and all(h.startswith((moved / "runs").as_uri()) for h in hrefs), hrefs
    build_log = next(a for a in links if a.get_attribute("href").endswith("build/b2.log"))
    build_log.click()
    assert "log of build in " + paths["v2"].name in browser.find_element(By.TAG_NAME, "body").text

    # back on the dashboard: the test history says where suite-b/k1 started failing
    browser.get((moved / "index.html").as_uri())
    hist = browser.find_element(By.CSS_SELECTOR, 'tr[data-test="suite-b/k1"]')
    assert "failing since v3" in hist.text
    hist.find_element(By.PARTIAL_LINK_TEXT, "failing since").click()
    assert browser.current_url.endswith(f"runs/{paths['v3'].name}/index.html")
