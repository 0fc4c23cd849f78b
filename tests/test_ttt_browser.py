"""Test-time training in a real headless Chromium: grids survive Streamlit's HTML sanitizer as coloured
cells (the Tree page of a scripted ttt run), and the Learn lesson "learning at test time" trains lab-arc
live on a held-out task and shows the vote.

Needs Debian's chromium at /usr/bin/chromium (`scripts/dev.sh test` installs it on a fresh machine)."""
from __future__ import annotations

from pathlib import Path

import pytest
from helpers_browser import browser, new_page  # noqa: F401  (the fixtures)
from helpers_browser import expect, goto, needs_chromium, serve_app, settle

from store import Store
from viz.grids import PALETTE

pytestmark = [pytest.mark.slow, pytest.mark.browser, needs_chromium]
ROOT = Path(__file__).resolve().parents[1]

# The colours of the cells of the first grid of the first task on the page, as the browser paints them.
FIRST_GRID_COLOURS = """() => Array.from(document.querySelector('.tt-task .tt-grid').children)
    .map(cell => [getComputedStyle(cell).backgroundColor, cell.getBoundingClientRect().width])"""


def rgb(colour: str) -> str:
    return "rgb({}, {}, {})".format(*(int(colour[i:i + 2], 16) for i in (1, 3, 5)))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from ttt_fixtures import ttt_run

    db = tmp_path_factory.mktemp("ttt-browser") / "thinktrace.db"
    store = Store(f"sqlite:///{db}")
    run_id = ttt_run(store, 8, 8, limit=2)
    with serve_app(db) as base:
        yield base, run_id


def test_a_ttt_tree_draws_its_task_as_coloured_cells(app, new_page):
    base, run_id = app
    page = new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    goto(page, base, f"tree?run={run_id}&problem=1")
    expect(page.locator(".tt-task .tt-grid").first).to_be_visible()
    painted = page.evaluate(FIRST_GRID_COLOURS)
    assert painted and {colour for colour, _ in painted} <= {rgb(c) for c in PALETTE}
    assert all(width >= 10 for _, width in painted)  # cells, not collapsed spans
    expect(page.locator(".tt-predictions tr")).to_have_count(9)  # a header and the 8 predictions
    expect(page.get_by_text("ARC's two attempts")).to_be_visible()


@pytest.mark.skipif(not (ROOT / "reasoning/lab/models/arc/config.json").is_file(), reason="lab-arc weights not installed")
def test_the_lesson_trains_lab_arc_live_and_votes(app, new_page):
    base, _ = app
    page = new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    goto(page, base, "learn")
    heading = page.get_by_role("heading", name="8 · Learning at test time")
    heading.scroll_into_view_if_needed()
    task = page.locator(".tt-task").last
    expect(task).to_be_visible()
    assert task.locator(".tt-grid").count() >= 2 * 3 + 2  # three or more demonstrations, the test input, gold
    page.get_by_role("button", name="Guess in context, then learn from the demonstrations").click()
    attempts = page.locator("[data-testid=stMetric]").filter(has_text="ARC's two attempts (pass@2)")
    attempts.wait_for(timeout=180_000)
    settle(page)
    expect(page.locator("[data-testid=stMetric]").filter(has_text="In context")).to_be_visible()
    expect(page.locator(".tt-predictions tr")).to_have_count(9)
    expect(page.locator(".js-plotly-plot").filter(has_text="loss per step")).to_have_count(1)
