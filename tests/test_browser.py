"""End to end in a real headless Chromium: start the app on a temp database, launch a small run on the
embedded model from the Run page, wait for it to finish, open its tree, click nodes and read their
path. A failed test leaves screenshots of its pages in a temp folder (helpers_browser.new_page); the
README's pictures are made by scripts/screenshots.py, never by the tests.

Needs Debian's chromium at /usr/bin/chromium (`scripts/dev.sh test` installs it on a fresh machine)."""
from __future__ import annotations

import time

import pytest
from helpers_browser import browser, new_page  # noqa: F401  (the fixtures)
from helpers_browser import expect, goto, needs_chromium, serve_app, settle

from store import Store
from store.runs import list_runs, run_problems, tree_nodes

pytestmark = [pytest.mark.slow, pytest.mark.browser, needs_chromium]


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """The app on its own database, seeded with scripted runs of every strategy (so the Verifier and
    Compare pages have something to show)."""
    from test_app import make_runs  # the same scripted runs the AppTest specs use

    db = tmp_path_factory.mktemp("browser") / "thinktrace.db"
    store = Store(f"sqlite:///{db}")
    make_runs(store)
    with serve_app(db) as base:
        yield base, store


def number_input(page, label: str):
    """The number field whose label is exactly `label` ("Problems", not "Problems in flight")."""
    return page.get_by_role("spinbutton", name=label, exact=True)


def click_node(page, seq: int, chart: int = 0) -> None:
    """Click a tree node by its seq: find its trace and point index from the figure's customdata, then
    click the centre of that SVG point (the drag layer covers points, so a mouse click, not .click())."""
    where = page.evaluate(
        """([seq, chart]) => {
            const plot = document.querySelectorAll('.js-plotly-plot')[chart];
            let scatter = 0;
            for (const trace of plot._fullData) {  // typed arrays, decoded from plotly's base64
                const data = trace.customdata;
                if (data !== undefined && data !== null) {
                    const values = Array.from(data);
                    const i = values.findIndex(v => Number(v) === seq);
                    if (i >= 0 && trace.name !== 'clicked') return [scatter, i];
                }
                scatter += 1;
            }
            return null;
        }""", [seq, chart])
    assert where is not None, f"node {seq} is not drawn"
    trace, index = where
    point = page.locator(".js-plotly-plot").nth(chart).locator(".scatterlayer > g.trace").nth(trace) \
        .locator("g.points > path").nth(index)
    box = point.bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)


def test_launch_a_run_watch_it_finish_and_walk_its_tree(app, new_page):
    base, store = app
    page = new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)

    goto(page, base, "")
    expect(page.get_by_role("heading", name="ThinkTrace")).to_be_visible()

    # Run page: cot on one easy arithmetic problem, 32 new tokens, on the embedded model.
    goto(page, base, "run")
    command = page.locator("[data-testid=stCode]").filter(has_text="python -m reasoning run")  # not the serve example
    page.locator("[data-testid=stSelectbox]").filter(has_text="Strategy").click()
    page.get_by_role("option", name="cot — one greedy chain of thought").click()
    expect(command).to_contain_text("--strategy cot")
    problems = number_input(page, "Problems")
    problems.fill("1")
    problems.press("Enter")
    expect(command).to_contain_text("--limit 1")
    settle(page)  # the previous strategy's widgets linger until the rerun ends
    tokens = number_input(page, "max new tokens")
    tokens.fill("32")
    tokens.press("Enter")
    expect(command).to_contain_text("--max-new-tokens 32")
    settle(page)
    page.get_by_role("button", name="Start run").click()

    # Live progress until done (model load plus 32 tokens on a shared CPU: allow minutes).
    status = page.locator("[data-testid=stMetric]").filter(has_text="Status").locator("[data-testid=stMetricValue]")
    status.wait_for(timeout=120_000)
    deadline = time.time() + 300
    while status.inner_text().strip() != "done":
        assert status.inner_text().strip() in ("running", "done"), status.inner_text()
        assert time.time() < deadline, "the run did not finish in 5 minutes"
        page.wait_for_timeout(1000)
    page.wait_for_selector(".js-plotly-plot")
    settle(page)

    real = next(r for r in list_runs(store) if r.model != "scripted")
    assert real.strategy == "cot" and real.status == "done" and real.problems_done == 1
    problem = run_problems(store, real.id)[0]
    nodes = tree_nodes(store, real.id, problem.problem_id)

    # Its tree: open it from the Run page, click the root, then the last step.
    page.get_by_role("link", name="Open trees").click()
    page.wait_for_url(f"**/tree?run={real.id}**")
    page.get_by_role("heading", name="Tree").wait_for()
    page.wait_for_selector(".js-plotly-plot")
    settle(page)
    click_node(page, 0)
    page.get_by_text("This is the root: it holds the question.").wait_for()
    leaf = nodes[-1]
    settle(page)
    click_node(page, leaf.seq)
    page.get_by_text(f"Path to node #{leaf.seq}").wait_for()
    first_words = " ".join(leaf.text.split()[:4])
    # the step's own text; the page streams its parts, so the caption can come before the text under load
    expect(page.locator("body")).to_contain_text(first_words, timeout=60_000)
    assert f"node={leaf.seq}" in page.url
    settle(page)

    # The other pages, on the scripted runs of every strategy.
    scripted = {r.strategy: r.id for r in list_runs(store) if r.model == "scripted"}
    goto(page, base, f"verifier?run={scripted['best_of_n']}")
    # the page draws in parts: wait for the text itself (a plot can come first under load)
    expect(page.get_by_text("ROC AUC").first).to_be_visible(timeout=60_000)
    goto(page, base, f"compare?runs={scripted['cot']},{scripted['self_consistency']},{scripted['best_of_n']}")
    expect(page.get_by_text("Which run solved what")).to_be_visible(timeout=60_000)
    page.close()


def test_learn_page_runs_its_first_lessons_live_in_the_browser(app, new_page):
    """The Learn page on the lab pair: lesson 1 (greedy vs 16 samples) fills lessons 2-3 (votes, the
    verifier with its arithmetic checker), then lesson 4 grows a beam-search tree and lesson 6 shows
    the lab thinker's trace."""
    base, _ = app
    page = new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(60_000)
    goto(page, base, "learn")
    page.get_by_role("heading", name="Learn: thinking longer, step by step").wait_for()
    expect(page.locator("[data-testid=stAlert]").first).to_contain_text("Gold answer")
    page.get_by_role("button", name="Answer greedily, then sample 16 paths").click()
    metric = page.locator("[data-testid=stMetric]").filter(has_text="Samples right")
    metric.wait_for(timeout=120_000)
    expect(metric).to_contain_text("/ 16")
    page.locator("[data-testid=stMetric]").filter(has_text="Weighted best-of-N (PRM)").wait_for()
    page.get_by_text("Majority answer:").wait_for()  # lesson 2 votes on the same samples
    # Level 4, problem 2, seed 0 (the defaults): a sample slips a digit and the checker stops it.
    page.get_by_text("A path the checker stopped").wait_for()
    expect(page.locator("body")).to_contain_text("arithmetic 0.0")  # drawn in parts: wait for it
    settle(page)
    page.get_by_role("button", name="Run beam search").click()
    page.get_by_text("Beam search answer:").wait_for(timeout=120_000)
    settle(page)
    expect(page.get_by_text("Beam search answer:")).to_contain_text("generated tokens")
    # Lesson 6: the lab thinker thinks about the same problem; its checks and its answer show.
    page.get_by_role("button", name="Let the thinker think about this problem").click()
    thinking = page.locator("[data-testid=stMetric]").filter(has_text="Thinking tokens")
    thinking.wait_for(timeout=120_000)
    settle(page)
    expect(page.locator("body")).to_contain_text("Check: ", timeout=60_000)
    expect(page.locator("body")).to_contain_text("After thinking:", timeout=60_000)
    page.close()
