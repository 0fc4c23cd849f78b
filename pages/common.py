"""What every page shares: the store (opened once, read-only queries cached), readable labels, run/problem
pickers that read and write the URL, share links, and one-message error handling.

Link convention (every view restores from its URL): `?run=ID` names one run, `?runs=ID,ID,…` a set of
runs (Compare, Verifier, Library's compare link), `?problem=N` counts from 1 as the labels do, and
`?node=SEQ` is a node's creation number. IDs may be shortened to a unique prefix."""
from __future__ import annotations

import math
import re
from datetime import datetime
from urllib.parse import quote

import streamlit as st

from reasoning.errors import UserError
from store import Store
from store.library import RunSize
from thinktrace.launch import check_id

TREE_PAGE = "pages/tree.py"
RUN_PAGE = "pages/run.py"
# What a read-only visitor may export or report at once (the Library). Building either holds the runs'
# text in memory several times over (rows, JSON or HTML, gzip), and anyone who reaches a shared app can
# click, as often as they like: the work of one click is bounded by the size of what it builds, known
# in SQL before anything is built (store.library.run_size). 50,000 nodes and 20 M characters cover a
# class's runs (hundreds of problems times tens of samples) and build in seconds within a few hundred
# MB. The owner (not read-only) has no limit, nor have `python -m reasoning export` and `report`.
VISITOR_LIMIT = RunSize(nodes=50_000, chars=20_000_000)


def _leave_folder_mode() -> None:
    """A link straight to a page (`/tree?run=…`) on a freshly started server would run that page alone:
    Streamlit treats an app with a `pages/` folder as an old folder-style app until app.py has called
    st.navigation once. Switch that off and rerun: the same page (same URL path, same query) then runs
    inside app.py, with its menu and sidebar.

    This touches a Streamlit internal because Streamlit 1.67 has no supported way to keep a folder
    named `pages/` beside the entry point without its folder mode (checked in the installed source):
    `PagesManager.__init__` sets the class flag `uses_pages_directory` from `(entry point's folder /
    "pages").exists()` when the first session starts; `ScriptRunner` then runs `_mpa_v1` (each
    `pages/*.py` as a page of its own, app.py not run) instead of app.py; only a call of `st.navigation`
    clears the flag (commands/navigation.py), and that call happens inside app.py, i.e. too late for
    the first visitor of a deep link. No config option turns folder mode off
    (`client.showSidebarNavigation` only hides its menu), the docs say st.navigation may be called only
    from the entry point, and Streamlit's own guidance (its bundled skill, references/multipage-apps.md)
    is to name the folder `app_pages/`, not `pages/`. Renaming the folder is the supported fix; until
    then this guard stays, and does nothing once Streamlit drops folder mode (the ImportError, or the
    flag already False)."""
    try:
        from streamlit.runtime.pages_manager import PagesManager
    except ImportError:  # a future Streamlit without folder mode
        return
    if getattr(PagesManager, "uses_pages_directory", False):
        PagesManager.uses_pages_directory = False
        st.rerun()


_leave_folder_mode()


def open_store() -> Store:
    """The active database ($THINKTRACE_DB or ./thinktrace.db), opened and its schema checked once per
    app process; a bad one stops the page with one message. A read-only app writes nothing, so it does
    not create a database file that is not there (opening one creates it with its schema)."""
    from pathlib import Path

    from store.db import resolve_url
    from thinktrace.settings import read_only

    try:
        url = resolve_url()
        file = Store(url).sqlite_file
        if read_only() and file is not None and not Path(file).exists():
            raise UserError(f"there is no database at {file}, and a read-only app creates none: set THINKTRACE_DB "
                            "to the database to show")
        return _open_store(url)
    except UserError as exc:
        st.error(md_escape(exc))
        st.stop()


@st.cache_resource(show_spinner=False)
def _open_store(url: str) -> Store:
    store = Store.open(url)
    store.engine  # noqa: B018  (create or check the schema now: a bad database fails here, not mid-page)
    return store


# Read-only queries, cached. A run's data changes only while it runs: nodes stream in and results
# commit; a finished problem's tree and a run that stopped are final (a resume sets it running again).
# So a cached read is keyed on the version of what it reads, the (status, problems done) of its runs,
# which a page has in hand from the run list; while a run runs there is no version and the read goes
# to the database on every rerun (the live views poll). The run lists themselves (list_runs,
# library_runs, run_summary) are one aggregate query each and stay uncached: they are the versions,
# and a page's own writes (rename, delete, import) show on the next rerun.
_BY_URL = {Store: lambda store: store.url}


def runs_version(*runs) -> tuple | None:
    """The version of these runs (RunSummary rows) for `cached`, or None while one of them runs."""
    if any(run.status == "running" for run in runs):
        return None
    return tuple((run.id, run.status, run.problems_done) for run in runs)


def cached(query, store: Store, *args, version):
    """`query(store, *args)` (a store function), served from the cache while `version` is the same;
    version None reads the database."""
    if version is None:
        return query(store, *args)
    return _cached(f"{query.__module__}.{query.__qualname__}", query, store, args, version)


@st.cache_data(hash_funcs=_BY_URL, max_entries=512, show_spinner=False)
def _cached(name: str, _query, store: Store, args: tuple, version):  # keyed on the query's name, not its code
    return _query(store, *args)


# Every ASCII punctuation character (CommonMark lets any of them be escaped with a backslash): no
# emphasis, heading, list, table, code, math, HTML, entity, image or link syntax survives.
_MD_SYNTAX = re.compile(r"([!-/:-@\[-`{-~])")
# GFM also turns bare URLs and e-mail addresses into links, after escapes are read (remark-gfm finds
# them in the text itself), so escaping cannot stop those: a WORD JOINER (U+2060, invisible, no line
# break) after the `:` of `://`, the `www` of `www.` and the `@` of an address breaks the pattern.
_AUTOLINK = re.compile(r"(?<=:)(?=//)|(?<=@)|(?<=www)(?=\.)", re.IGNORECASE)


def md_escape(text) -> str:
    """Text from data (names, questions, steps, errors, values in a link) for any Streamlit element
    that renders Markdown (markdown, caption, error, subheader, metric labels, ...): shown as the
    same characters, never as formatting, an image, a link or HTML."""
    return _MD_SYNTAX.sub(r"\\\1", _AUTOLINK.sub("\u2060", "" if text is None else str(text)))


def finite(value) -> float | None:
    """`value` as a float, or None when it is missing, NaN or infinite: what a page shows as "–" (a
    database written by another program may hold any float)."""
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def num(value, digits: int = 2) -> str:
    value = finite(value)
    return "–" if value is None else f"{value:.{digits}f}"


def short(text: str, limit: int = 70) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def when(moment: datetime | None) -> str:
    if moment is None:
        return "–"
    from store.models import as_utc

    return as_utc(moment).astimezone().strftime("%b %d %H:%M")


def duration(seconds: float | None) -> str:
    seconds = finite(seconds)
    if seconds is None:
        return "–"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def run_label(run) -> str:
    """`name · strategy · date · accuracy` (a RunSummary): what a person recognises a run by. Plain
    text only: selectbox options cannot hold icons, and emoji fonts are not everywhere."""
    acc = f" · {100 * run.accuracy:.0f}% right" if run.accuracy is not None else ""
    state = "" if run.status == "done" else f" · {run.status}"
    name = short(run.name, 48)
    strategy = "" if run.strategy in name else f" · {run.strategy}"
    return f"{name}{strategy} · {when(run.created_at)}{acc}{state}"


def problem_label(p) -> str:
    """`#3 ✓ Tom has 12 apples…` (a RunProblemRow)."""
    mark = "…" if not p.done else {True: "✓", False: "✗", None: "·"}[p.correct]
    return f"#{p.position + 1} {mark} {short(p.question, 80)}"


def param(name: str) -> str | None:
    value = st.query_params.get(name)
    return value if value not in (None, "") else None


def int_param(name: str) -> int | None:
    """`?name=N` as a whole number (up to 9 digits), else None with one message."""
    value = param(name)
    if value is None:
        return None
    if re.fullmatch(r"[0-9]{1,9}", value):
        return int(value)
    st.error(f"?{md_escape(name)}={md_escape(short(value, 40))} in the link is not a number: showing the default instead.")
    return None


def url_ref(ref: str, what: str = "run") -> str | None:
    """An id taken from a link, checked by form before any use (thinktrace.launch.check_id); a
    malformed one is one message and None."""
    try:
        return check_id(ref, what)
    except UserError as exc:
        st.error(f"{md_escape(exc)}. The link is not valid; pick a {what} below.")
        return None


def url_run(store: Store, ref: str | None = None) -> str | None:
    """The run named by `ref` or `?run=` (full id or unique prefix); a malformed or unknown one is one
    clear message."""
    from store.runs import resolve_run_id

    ref = ref or param("run")
    if ref is None or url_ref(ref) is None:
        return None
    try:
        return resolve_run_id(store, ref)
    except UserError as exc:
        st.error(f"{md_escape(exc)}. The link may come from another database; pick a run below.")
        return None


def pick_run(store: Store, runs: list, *, key: str = "run", label: str = "Run") -> object | None:
    """A selectbox of runs by readable label, defaulting to `?run=`; writes the choice back to the URL."""
    if not runs:
        return None
    wanted = url_run(store)
    ids = [r.id for r in runs]
    if wanted in ids and st.session_state.get(f"_{key}_from_url") != wanted:
        st.session_state[key] = wanted  # a new link wins over the widget's previous choice
        st.session_state[f"_{key}_from_url"] = wanted
    if st.session_state.get(key) not in ids:
        st.session_state[key] = ids[0]
    by_id = {r.id: r for r in runs}
    chosen = st.selectbox(label, ids, key=key, format_func=lambda rid: run_label(by_id[rid]))
    if param("run") != chosen:
        st.query_params["run"] = chosen
    return by_id[chosen]


def run_set(store: Store) -> list[str]:
    """The runs a link names, in order: `?runs=a,b` (or `?run=a,b`, as older links wrote it); unknown ones
    are one message each and are left out."""
    refs = ",".join(v for v in (param("runs"), param("run")) if v)
    found: list[str] = []
    for ref in refs.split(","):
        if ref.strip():
            rid = url_run(store, ref.strip())
            if rid is not None and rid not in found:
                found.append(rid)
    return found


def set_runs(ids: list[str]) -> None:
    """Write a run set to the URL: `?run=` for one run, `?runs=` for several (never both)."""
    key, other = ("run", "runs") if len(ids) == 1 else ("runs", "run")
    value = ",".join(ids)
    if st.query_params.get(key) != value:
        st.query_params[key] = value
    if other in st.query_params:
        del st.query_params[other]


def query_string(params: dict) -> str:
    """`run=…&problem=2`: values quoted, commas kept readable (`runs=a,b`), empty values dropped."""
    return "&".join(f"{quote(str(k))}={quote(str(v), safe=',')}" for k, v in params.items() if v not in (None, ""))


def compare_link(run_ids: list[str]) -> str:
    """A relative link to the Compare page showing these runs side by side."""
    return f"compare?{query_string({'runs': ','.join(run_ids)})}"


def share_url(base: str | None, params: dict) -> str:
    """The full link to a view: the page's URL as the browser sees it (no query) plus the query. Without
    a base (no browser, e.g. tests) a relative `?…` link, which still works pasted after the page URL."""
    query = query_string(params)
    return f"{base.split('?')[0].split('#')[0]}?{query}" if base else f"?{query}"


def share_box(params: dict | None = None) -> str:
    """A copyable "Share link" for the view on screen (default: the URL's query as the page left it).
    Call it after the page has written its query params. Returns the link."""
    link = share_url(st.context.url, dict(st.query_params) if params is None else params)
    st.caption("Share link: opens this view (same run, problem and node) for anyone with access to this "
               "app and database. Copy it with the button on the right.")
    st.code(link, language=None, wrap_lines=True)
    return link


def tree_link(run_id: str, position: int | None = None, node: int | None = None) -> str:
    """A relative link to the Tree page showing one problem (and node) of a run. In URLs problems
    count from 1, as in the labels (`problem=1` is the run's first problem, position 0)."""
    query = f"run={run_id}"
    if position is not None:
        query += f"&problem={position + 1}"
    if node is not None:
        query += f"&node={node}"
    return f"tree?{query}"


def empty_state(message: str, *, to_run_page: bool = True) -> None:
    st.info(message)
    if to_run_page:
        st.page_link(RUN_PAGE, label="Start a run", icon=":material/play_arrow:")
