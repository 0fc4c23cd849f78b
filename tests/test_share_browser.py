"""Sharing in a real browser: a bundle downloaded from one app instance and uploaded into another
(separate databases) opens the same tree through the share link; the HTML report opened from a file://
URL with every network request blocked still draws the budget curve and the trees (plotly.js is
inlined), and hostile step text stays text."""
from __future__ import annotations

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from helpers_browser import browser  # noqa: F401  (the fixture)
from helpers_browser import expect, goto, needs_chromium, pick_option, serve_app, settle

from thinktrace.report import write_report
from store import Store
from store.runs import list_runs, run_problems, tree_nodes
from tests.test_bundle import make_run

pytestmark = [pytest.mark.slow, pytest.mark.browser, needs_chromium]


def test_a_bundle_from_one_app_opens_the_same_tree_in_another_through_the_share_link(browser, tmp_path):
    db_a, db_b = tmp_path / "a.db", tmp_path / "b.db"
    store_a = Store(f"sqlite:///{db_a}")
    run_id = make_run(store_a)  # a scripted run through the real runner, with verifier scores
    problem = run_problems(store_a, run_id)[1]
    leaf = next(n for n in tree_nodes(store_a, run_id, problem.problem_id)
                if n.status != "selected" and n.answer is not None)  # a path the run did not choose
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    page.set_default_timeout(30_000)

    # A: a shared, read-only deployment. Its Library offers the bundle but no import; its Tree page
    # offers the link to this node.
    with serve_app(db_a, env={"THINKTRACE_READONLY": "1"}) as base_a:
        goto(page, base_a, "library")
        expect(page.get_by_test_id("stSidebar")).to_contain_text("read-only")
        assert page.locator("[data-testid=stFileUploader]").count() == 0
        pick_option(page, "Select runs", run_id[:8])
        page.keyboard.press("Escape")
        settle(page)
        bundle = download_bundle(page, tmp_path, "Export 1 run (bundle)")
        assert bundle.name.endswith(".thinktrace.gz") and bundle.stat().st_size > 100

        goto(page, base_a, f"tree?run={run_id[:8]}&problem={problem.position + 1}&node={leaf.seq}")
        page.get_by_text(f"Path to node #{leaf.seq}").wait_for()
        link = page.locator("[data-testid=stCode]").filter(has_text="/tree?").inner_text().strip()
        assert link == f"{base_a}/tree?run={run_id}&problem={problem.position + 1}&node={leaf.seq}"

    # B: an empty app on its own database; the peer uploads the file on the Library page.
    with serve_app(db_b) as base_b:
        goto(page, base_b, "library")
        page.locator("[data-testid=stFileUploader] input[type=file]").set_input_files(str(bundle))
        page.get_by_text("imported 1 run").wait_for()
        assert [r.id for r in list_runs(Store(f"sqlite:///{db_b}"))] == [run_id]

        # The same link, pointed at B, restores run, problem and node: the path's text is on screen.
        page.goto(link.replace(base_a, base_b))
        page.get_by_role("heading", name="Tree").wait_for()
        page.get_by_text(f"Path to node #{leaf.seq}").wait_for()
        settle(page)
        body = " ".join(page.locator("[data-testid=stMain]").inner_text().split())
        assert " ".join(leaf.text.split()[:5]) in body
        assert page.url.startswith(link.replace(base_a, base_b))
    page.close()


def test_the_report_opens_offline_from_disk_and_draws_its_figures(browser, store, tmp_path):
    run_id = make_run(store)
    path = tmp_path / "run.html"
    write_report(store, run_id, path)
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


def download_bundle(page, folder, label: str):
    """Click the download button and save its file. Streamlit builds the bundle on the click; on a
    loaded machine (the whole suite at once) a click during a rerun was lost once: settle, try again."""
    button = page.get_by_role("button", name=label)
    for attempt in (1, 2):
        try:
            # Streamlit disables widgets while a loaded server has not answered the last rerun yet.
            expect(button).to_be_enabled(timeout=90_000)
            with page.expect_download(timeout=45_000) as download:
                button.click()
            break
        except PlaywrightTimeout:
            if attempt == 2:
                raise
            settle(page)
    path = folder / download.value.suggested_filename
    download.value.save_as(path)
    return path
