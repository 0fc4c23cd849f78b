"""Hostile data and links in a real Chromium (issue 14): markup stored in runs (names, errors, questions,
answers, strategy, verifier) shows as text on every page, with no image or link element made from it
and no request to the hosts it names; a `?run=` that is a path never reads a file nor creates a folder;
the app listens on 127.0.0.1 only unless told otherwise (.streamlit/config.toml)."""
from __future__ import annotations

import socket
from urllib.parse import quote

import pytest
from helpers_browser import browser  # noqa: F401  (the fixture)
from helpers_browser import goto, needs_chromium, pick_option, serve_app, settle

from store import Store
from thinktrace.launch import LOG_DIR

pytestmark = [pytest.mark.slow, pytest.mark.browser, needs_chromium]

DATA_HOSTS = ("127.0.0.1:9", "evil.example")  # the hosts HOSTILE names (tests/test_app.py)

# Every <img> and <a> in the page, with where it points and what it says.
ELEMENTS = """() => [...document.querySelectorAll('img, a')].map(e => ({
    tag: e.tagName.toLowerCase(), src: e.getAttribute('src') || e.getAttribute('href') || e.getAttribute('xlink:href') || '',
    text: (e.textContent || '').trim().slice(0, 80)}))"""


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    from test_app import make_hostile_runs

    folder = tmp_path_factory.mktemp("hostile")
    db = folder / "hostile.db"
    ids = make_hostile_runs(Store(f"sqlite:///{db}"))
    (folder / "secret.log").write_text("error: TOPSECRET by a relative path\n")
    return db, ids


def data_elements(page) -> list[dict]:
    """The <img> and <a> elements made from data: any image that is not the app's own, any link to a
    host the data names or whose text is data."""
    found = page.evaluate(ELEMENTS)
    return [e for e in found if any(h in e["src"] for h in DATA_HOSTS) or e["text"] in ("a", "click", "x")
            or (e["tag"] == "img" and not e["src"].startswith(("data:", "/", "./", "static/", "http://127.0.0.1:")))
            or e["src"] == "x"]


def visit(page, base: str, path: str) -> str:
    """The page's text once it has stopped changing: charts, late markdown and the Run page's monitor
    (measured: about 2 s after the script's run ends on a loaded 2-core machine) come after `settle`."""
    goto(page, base, path)
    main = page.locator("[data-testid=stMain]")
    text, stable_since = main.inner_text(), 0
    for _ in range(80):  # at most ~20 s
        page.wait_for_timeout(250)
        settle(page)
        now = main.inner_text()
        stable_since = stable_since + 1 if now == text else 0
        text = now
        if stable_since >= 4:  # unchanged for a second
            break
    return text


def test_stored_markup_makes_no_image_or_link_and_no_request_on_any_page(hostile, browser):
    db, ids = hostile
    requests: list[str] = []
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    page.on("request", lambda r: requests.append(r.url))
    views = {"home": "", "run": f"run?run={ids[0]}", "tree": f"tree?run={ids[0]}",
             "compare": f"compare?runs={ids[0]},{ids[1]}", "verifier": f"verifier?runs={ids[0]},{ids[1]}",
             "budget": f"budget?runs={ids[0]}", "library": "library"}
    with serve_app(db) as base:
        for name, path in views.items():
            text = visit(page, base, path)
            if name == "library":
                pick_option(page, "Select runs", ids[0][:8])
                page.keyboard.press("Escape")
                settle(page)
            assert data_elements(page) == [], (name, data_elements(page))
            if name in ("run", "tree", "compare"):  # the text itself is there, as typed
                assert "![x](http://127.0.0.1:9/x.png)" in text.replace("\u2060", ""), (name, text[:2000])
        # the Run page's failed run: its name, error and question are on screen as text
        text = visit(page, base, f"run?run={ids[0]}")
        assert "error ![x](" in text and "Elapsed" in text
    assert not [u for u in requests if any(h in u for h in DATA_HOSTS)], requests
    page.close()


def test_a_read_only_app_never_reads_or_creates_files_for_a_path_in_the_link(hostile, browser, tmp_path):
    """`run?run=../secret` showed the last line of `<db folder>/secret.log`; viewing made `.thinktrace-logs`."""
    db, ids = hostile
    (tmp_path / "abs.log").write_text("error: TOPSECRET by an absolute path\n")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(30_000)
    with serve_app(db, env={"THINKTRACE_READONLY": "1"}) as base:
        for ref in ("../secret", str(tmp_path / "abs"), ids[0][:8] + "%", "0000dead"):
            text = visit(page, base, f"run?run={quote(ref, safe='')}")
            assert "TOPSECRET" not in text, ref
            assert ("is not a run id" in text) != (ref == "0000dead"), (ref, text[:1000])
        # read-only Library: the selected run's name is shown as text, no element made from it
        visit(page, base, "library")
        pick_option(page, "Select runs", ids[0][:8])
        page.keyboard.press("Escape")
        settle(page)
        assert "name ![x](" in page.locator("[data-testid=stMain]").inner_text().replace("\u2060", "")
        assert data_elements(page) == []
    assert not (db.parent / LOG_DIR).exists()
    page.close()


def outward_address() -> str | None:
    """This machine's address on its network (no packet is sent), or None without one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


def test_the_app_listens_on_loopback_only_unless_asked(hostile):
    """Streamlit binds every interface by default; the project's config says 127.0.0.1."""
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to probe")
    db, _ = hostile
    with serve_app(db) as base:
        port = int(base.rsplit(":", 1)[1])
        with socket.socket() as s:
            s.settimeout(3)
            assert s.connect_ex((address, port)) != 0, f"the app answers on {address}:{port}"
