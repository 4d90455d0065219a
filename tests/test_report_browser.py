"""pareto.html renders offline in headless Chromium: plots draw, nothing is fetched, and a report
with a confirmation (forest plot, long settings) fits a 1400-px window.

Every request that is not a file:// URL is aborted and recorded; the test fails if any was made.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from helpers import CHROMIUM, CHROMIUM_ARGS
from test_forest import confirmed_run
from test_report import standard_run

from reports import write_report

pytestmark = pytest.mark.browser


def need_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def page_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_chromium()
    return write_report(standard_run(tmp_path_factory.mktemp("run"))) / "pareto.html"


@pytest.fixture(scope="module")
def confirmed_page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of test_forest's confirmed run: every verdict, an infinite bound, an unbroken
    150-character setting."""
    need_chromium()
    return write_report(confirmed_run(tmp_path_factory.mktemp("run") / "run")) / "pareto.html"


def pixel_std(png: bytes) -> float:
    from PIL import Image

    return float(np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=float).std())


def test_pareto_html_draws_offline(page_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    failed: list[str] = []
    errors: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            def only_files(route, request) -> None:
                if request.url.startswith(("file:", "data:", "blob:")):
                    route.continue_()
                else:
                    blocked.append(request.url)
                    route.abort()

            page.route("**/*", only_files)
            page.on("requestfailed", lambda r: failed.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(page_path.as_uri(), wait_until="load")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 2")
            counts = page.evaluate(
                """() => [...document.querySelectorAll('.js-plotly-plot')].map(d => ({
                    id: d.id,
                    drawn: d.querySelectorAll('svg.main-svg, canvas').length,
                    points: d.querySelectorAll('.scatterlayer .point').length,
                    lines: d.querySelectorAll('.parcoords-lines, .parcoords .axis').length,
                }))"""
            )
            shots = {c["id"]: page.locator(f"#{c['id']}").screenshot() for c in counts}
        finally:
            browser.close()
    assert not errors, errors
    assert not blocked and not failed, (blocked, failed)
    by_id = {c["id"]: c for c in counts}
    assert set(by_id) == {"plot-0", "plot-1"}
    assert all(c["drawn"] > 0 for c in counts), counts
    assert by_id["plot-0"]["points"] >= 8 * 6  # 8 drawn trials (+ markers) in each of 6 pairs
    assert by_id["plot-1"]["lines"] > 0
    for plot_id, png in shots.items():
        assert pixel_std(png) > 5.0, f"{plot_id} looks blank"


def test_a_confirmed_report_fits_1400_px_with_its_forest_plot(confirmed_page: Path) -> None:
    """No horizontal scrolling at 1400 × 900 (every table wraps to the page), and the inlined
    verdicts PNG decodes: its natural width is the 900 px it was drawn at."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(confirmed_page.as_uri(), wait_until="load")
            width = page.evaluate("document.documentElement.scrollWidth")
            tables = page.evaluate(
                "[...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().right)"
            )
            image = page.evaluate(
                """() => [...document.querySelectorAll('img.verdicts')].map(i => ({
                    complete: i.complete, width: i.naturalWidth, shown: i.clientWidth}))"""
            )
        finally:
            browser.close()
    assert width <= 1400, width
    assert len(tables) >= 5 and max(tables) <= 1400, tables  # confirmation: 2, search: 3
    assert image == [{"complete": True, "width": 900, "shown": 900}], image
