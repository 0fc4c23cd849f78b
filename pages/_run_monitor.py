"""The Run page's live monitor: the watched run's progress, the tree growing, stop and resume. It
polls the store while the run works (a fragment rerun every POLL_SECONDS) and stops once it is over."""
from __future__ import annotations

import time
from datetime import datetime, timezone

import streamlit as st

from pages.common import TREE_PAGE, duration, md_escape, param, problem_label, share_box, short, url_ref
from reasoning.errors import UserError
from thinktrace import launch
from thinktrace.launch import child_state, last_error, log_path, stop_run
from thinktrace.settings import read_only

POLL_SECONDS = 1.5


# The monitor polls a run that is working: its reads are never cached (see pages/common.cached).
def watched_run(store) -> str | None:
    from store.runs import list_runs, resolve_run_id

    rid = param("run") or st.session_state.get("watch")
    if rid and url_ref(rid) is None:  # a malformed id goes nowhere near the store or the log files
        return None
    if rid:
        try:
            return resolve_run_id(store, rid)  # a link may carry a unique prefix
        except UserError:
            return rid  # not in the store yet (still loading the model) or unknown: live() says which
    running = [r for r in list_runs(store) if r.status == "running"]
    return running[0].id if running else None


def live(store, run_id: str) -> None:
    from store.liveness import runs_here
    from store.models import as_utc
    from reasoning.fewshot import is_task
    from store.runs import current_problem, get_run, run_problems, run_summary, tree_nodes
    from viz.tree import tree_figure

    url = store.url
    state, code = child_state(run_id)
    try:
        s = run_summary(store, run_id)
    except UserError:
        s = None
    if s is None:
        if state == "running":
            st.info("Starting: loading the model. The run appears here as soon as it is ready.", icon=":material/hourglass_top:")
        else:
            # A read-only app starts nothing, so it has no start to explain: it reads no log at all.
            line = None if read_only() else last_error(log_path(url, run_id))
            if line:
                st.error(f"The run did not start: {md_escape(line.removeprefix('error: '))}")
            else:
                st.error(f"No run with id {md_escape(repr(run_id))} in this database. Pick one on the Tree page or "
                         "start a new one.")
        return
    status = "running" if state == "running" and s.status != "done" else s.status
    st.subheader(md_escape(s.name), anchor=False)
    now = datetime.now(timezone.utc)
    created, finished = as_utc(s.created_at), as_utc(s.finished_at)
    elapsed = ((finished or now) - created).total_seconds() if status in ("running", "done") else s.wall_seconds
    eta = None
    if status == "running" and s.problems_done:
        eta = elapsed / s.problems_done * (s.problems_total - s.problems_done)
    c = st.columns(5)
    c[0].metric("Status", status)
    c[1].metric("Problems", f"{s.problems_done} / {s.problems_total}")
    c[2].metric("Tokens", f"{s.tokens:,}")
    c[3].metric("Elapsed", duration(elapsed))
    c[4].metric("ETA", duration(eta) if eta is not None else ("–" if status != "done" else "done"))
    st.progress(min(1.0, max(0.0, s.problems_done / max(1, s.problems_total))))  # any stored counts
    if s.accuracy is not None:
        st.caption(f"Accuracy so far: {s.correct}/{s.graded} = {100 * s.accuracy:.0f}%"
                   + (" (oracle verifier: an upper bound)" if s.evaluation_only else ""))
    b1, b2, b3, _ = st.columns([1, 1, 1, 3])
    if s.error and status in ("interrupted", "failed"):
        st.error(f"The run failed: {md_escape(s.error)}" if status == "failed" else md_escape(s.error))
    writable = not read_only()  # a shared deployment: watch, never stop or resume
    if writable and status == "running":
        run = get_run(store, run_id)
        here, pid, host = runs_here(run), run.worker_pid, run.worker_host
        if not here:  # its process id means nothing on this machine: never signal it from here
            st.caption(f"Running on {md_escape(host)}: stop it there (or with Ctrl-C in its terminal).")
        elif b1.button("Stop", icon=":material/stop:", key="stop", help="The run stops as interrupted and can be resumed."):
            st.toast("Stopping…" if stop_run(pid) else "The run's process is already gone.")
    elif writable and status in ("interrupted", "failed"):
        if state == "exited" and code == 2:  # a resume from here was refused: the CLI's one line says why
            line = last_error(log_path(url, run_id))
            if line:
                st.error(f"Resume did not start: {md_escape(line.removeprefix('error: '))}")
        base_url = server_url(get_run(store, run_id))
        if b1.button("Resume", icon=":material/replay:", key="resume", disabled=base_url == "",
                     help="Finished problems are kept; the rest are redone."):
            launch.resume_run(run_id, url, base_url=base_url)
            st.session_state["_was_running"] = True
            time.sleep(0.3)
            st.rerun()
    if s.problems_done:
        (b1 if status == "done" else b2).page_link(TREE_PAGE, label="Open trees", icon=":material/account_tree:", query_params={"run": run_id})
    problem_id = current_problem(store, run_id)
    if problem_id is not None:
        rows = {p.problem_id: p for p in run_problems(store, run_id)}
        p = rows.get(problem_id)
        nodes = tree_nodes(store, run_id, problem_id)
        label = problem_label(p) if p else ""
        st.markdown(f"**{'Growing now' if status == 'running' and p and not p.done else 'Latest tree'}:** "
                    f"{md_escape(short(label, 120))} ({len(nodes)} nodes)")
        if p is not None and is_task(p):  # demonstrations, test input, gold and answer as grids
            from pages._tasks import show_task

            show_task(p, cell=12)
        st.plotly_chart(tree_figure(nodes, gold=p.gold if p else None), key=f"live_{run_id}", width="stretch")
    elif status == "running":
        st.caption("Waiting for the first step…")
    share_box({"run": run_id})
    was = st.session_state.get("_was_running")
    st.session_state["_was_running"] = status == "running"
    if was and status != "running":
        st.rerun(scope="app")  # stop polling: the run is over


def server_url(run) -> str | None:
    """For resuming an `openai`-backend run that has no server URL stored (imported runs never carry
    one: where the API key is sent must not come from someone else's data), the URL the user types
    here; "" until typed; None when the run needs none (its own stored URL, or another backend)."""
    params = run.params or {}
    if params.get("backend") != "openai" or (params.get("backend_options") or {}).get("base_url"):
        return None
    return st.text_input("Server URL to resume on", key=f"resume_base_url_{run.id}",
                         placeholder="http://127.0.0.1:8000/v1",
                         help="This run uses an OpenAI-compatible server but has no server address stored (an "
                              "imported run never brings one). The API key ($THINKTRACE_API_KEY or $OPENAI_API_KEY) "
                              "is sent only to the URL typed here.").strip()


def monitor(store) -> None:
    """The watched run, polled while it works; or what to do when there is none."""
    run_id = watched_run(store)
    if run_id is None:
        st.info("No run in progress. " + ("Open a finished one on the Tree or Library page." if read_only() else
                "Set one up above and press **Start run**; its progress and its trees appear here while it works "
                "(closing the tab does not stop it)."))
    else:
        state, _ = child_state(run_id)
        from store.runs import run_summary

        try:
            active = state == "running" or run_summary(store, run_id).status == "running"
        except UserError:
            active = False
        st.session_state.setdefault("_was_running", active)
        st.fragment(run_every=POLL_SECONDS if active else None)(live)(store, run_id)
