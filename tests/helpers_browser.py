"""What the browser tests share: Debian's chromium driven by Playwright (never `playwright install`),
an app server on a free port with its own database, waits that fit Streamlit's reruns, and screenshots
of a failed test's pages (into a temp folder, never into the repo: the README's pictures are made by
scripts/screenshots.py)."""
from __future__ import annotations

import contextlib
import os
import socket
from pathlib import Path

import pytest

from thinktrace.app_server import serve

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[1]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

needs_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian chromium at /usr/bin/chromium: apt-get install -y chromium (scripts/dev.sh test does it)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_app(db: Path, *, env: dict | None = None):
    """The app on a free port over the SQLite file `db` (its log next to it); yields the base URL once
    it answers. On exit, stops the runs it started, then the server."""
    try:
        with serve(db, free_port(), db.with_suffix(".streamlit.log"), env={"THINKTRACE_THREADS": "1", **(env or {})}) as base:
            yield base
    finally:
        _stop_runs(db)


def _stop_runs(db: Path) -> None:
    """A run the app started would outlive the test: signal every worker the store knows."""
    from sqlmodel import select

    from thinktrace.launch import stop_run
    from store import Store
    from store import models as m

    with contextlib.suppress(Exception), Store(f"sqlite:///{db}").session() as session:  # an empty DB has no table yet
        pids = session.exec(select(m.Run.worker_pid).where(m.Run.worker_pid.is_not(None))).all()
        for pid in pids:
            stop_run(pid)


@pytest.fixture(scope="module")
def browser():
    """Headless Debian chromium, one per test module (import this fixture into the module)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture()
def new_page(browser, request, tmp_path):
    """`new_page(**options)` opens a page for this test (closed after it). When the test fails, each page
    it left open is saved as a screenshot into $THINKTRACE_TEST_SHOTS/<test> if that is set, else into the
    test's tmp_path; the failure report names the files (conftest's makereport hook)."""
    opened: list = []
    request.node.browser_pages = opened
    request.node.browser_shots = (Path(os.environ["THINKTRACE_TEST_SHOTS"]) / request.node.name
                                  if os.environ.get("THINKTRACE_TEST_SHOTS") else tmp_path)

    def make(**options):
        page = browser.new_page(**options)
        opened.append(page)
        return page

    yield make
    for page in opened:
        with contextlib.suppress(Exception):
            page.close()


def failure_shots(item) -> list[Path]:
    """Screenshots of a failed test's open pages, each grown to its content's height (Streamlit scrolls
    inside its main block, so a full-page shot would miss it); the paths saved."""
    folder = Path(item.browser_shots)
    saved = []
    for i, page in enumerate(item.browser_pages):
        if page.is_closed():
            continue
        path = folder / f"failure-{i}.png"
        with contextlib.suppress(Exception):
            folder.mkdir(parents=True, exist_ok=True)
            size = page.viewport_size
            height = page.evaluate("() => document.querySelector('[data-testid=stMain]')?.scrollHeight || 0")
            page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height) + 40, 4000))})
            page.screenshot(path=str(path), timeout=15_000)
            saved.append(path)
    return saved


def expect(locator):
    from playwright.sync_api import expect as _expect

    return _expect(locator)


def settle(page, timeout=30_000) -> None:
    """Wait until the script has finished its run (the status widget goes away)."""
    page.wait_for_timeout(400)
    page.wait_for_selector("[data-testid=stStatusWidget]", state="detached", timeout=timeout)


def goto(page, base: str, path: str) -> None:
    page.goto(f"{base}/{path}")
    page.wait_for_selector("h1", timeout=30_000)
    settle(page)


def pick_option(page, widget_text: str, option_text: str, attempts: int = 4) -> None:
    """Open a select/multiselect (found by its label) and click one option. A rerun that lands while
    the dropdown opens closes it again, so open it again until the option shows (then fail loudly)."""
    box = page.locator("[data-testid=stMultiSelect], [data-testid=stSelectbox]").filter(has_text=widget_text)
    option = page.get_by_role("option").filter(has_text=option_text)
    for attempt in range(attempts):
        settle(page)
        box.first.click()
        try:
            option.first.wait_for(state="visible", timeout=5_000)
            break
        except Exception:
            if attempt == attempts - 1:
                raise
            page.keyboard.press("Escape")
    option.first.click()
