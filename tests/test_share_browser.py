"""The HTML report in a real browser: opened from a file:// URL with every network request blocked,
it still draws the budget curve and the trees (plotly.js is inlined), and hostile step text stays text."""
from __future__ import annotations

import shutil

import pytest

from reasoning.report import write_report
from tests.test_bundle import make_run

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.slow, pytest.mark.browser]


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield b
        b.close()


def test_the_report_opens_offline_from_disk_and_draws_its_figures(browser, db_url, tmp_path):
    run_id = make_run(db_url)
    path = tmp_path / "run.html"
    write_report(db_url, run_id, path)
    context = browser.new_context(offline=True)
    requests: list[str] = []

    def block_network(route):
        requests.append(route.request.url)
        route.abort()

    context.route("http://**/*", block_network)
    context.route("https://**/*", block_network)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_selector(".js-plotly-plot", timeout=30_000)
    assert page.locator(".js-plotly-plot").count() == 4  # budget curve + 3 trees
    assert page.locator("#fig1 .scatterlayer .point").count() >= 10  # the tree's nodes are drawn
    assert page.get_by_role("heading", name="Problem 0").count() == 1
    page.locator("details").nth(1).click()  # "All N nodes with their text"
    assert "<script>alert('x')</script> & more" in page.locator("table.nodes").first.inner_text()
    assert errors == [] and dialogs == [] and requests == []
    context.close()
