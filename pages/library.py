"""Library: every run in the database. Find runs, rename, tag and annotate them, delete (after a
confirmation), compare several, export them as a bundle, import a bundle, download an HTML report.

Filtering, sorting, counting and paging happen in SQL (store.library.library_runs), so the page stays
quick with thousands of runs; those queries are not cached, so an edit here shows on the next rerun. With THINKTRACE_READONLY=1 (a shared deployment) the writing actions
(rename, tag, notes, delete, import) are hidden; export and reports stay available, for runs up to
VISITOR_LIMIT.
"""
from __future__ import annotations

from datetime import datetime, time, timezone

import streamlit as st

from pages.common import (VISITOR_LIMIT, cached, compare_link, duration, md_escape, open_store, runs_version, short,
                          tree_link, when)
from reasoning.errors import UserError
from thinktrace.settings import read_only
from store.library import (LibraryFilter, delete_runs, library_facets, library_runs, run_info, run_size,
                           update_run_info)
from store.models import RUN_STATUSES

PAGE_SIZE = 50
SORTS = {"newest": ("created_at", True), "oldest": ("created_at", False), "accuracy ↓": ("accuracy", True),
         "accuracy ↑": ("accuracy", False), "tokens ↓": ("tokens", True), "tokens ↑": ("tokens", False),
         "time ↓": ("wall_seconds", True), "time ↑": ("wall_seconds", False), "name": ("name", False)}
CONFIRM = "library_confirm_delete"

st.title("Library")
store = open_store()
readonly = read_only()
flash = st.session_state.pop("library_flash", None)
if flash:
    st.success(flash)


def import_widget() -> None:
    """Upload a bundle; the import is one transaction and idempotent, a bad file is one message."""
    from store.bundle import import_bundle

    uploaded = st.file_uploader("Import a bundle (.thinktrace.gz)", key="library_upload",
                                help="A file exported from ThinkTrace here or on another machine. Runs "
                                     "already in this database are left as they are.")
    if uploaded is None:
        return
    done = st.session_state.get("_library_imported")
    if done is None or done[0] != uploaded.file_id:
        try:
            report = import_bundle(store, uploaded.getvalue())
            done = (uploaded.file_id, "success", f"{uploaded.name}: {report.message()}")
        except UserError as exc:
            done = (uploaded.file_id, "error", f"{uploaded.name} was not imported: {exc}")
        st.session_state["_library_imported"] = done
    (st.success if done[1] == "success" else st.error)(md_escape(done[2]))


def visitor_may_build(ids: list[str], what: str) -> bool:
    """Whether this session may build an export or report of these runs: always for the owner; for a
    read-only visitor, when they are within VISITOR_LIMIT (else one message saying so)."""
    if not readonly:
        return True
    size = cached(run_size, store, list(ids), version=runs_version(*(by_id[i] for i in ids)))
    if size.nodes <= VISITOR_LIMIT.nodes and size.chars <= VISITOR_LIMIT.chars:
        return True
    st.info(f"{what} is not offered on this shared app for runs this large ({size.nodes:,} nodes, "
            f"{size.chars / 1e6:.1f} M characters of text; the limit here is {VISITOR_LIMIT.nodes:,} nodes and "
            f"{VISITOR_LIMIT.chars / 1e6:.0f} M characters). Ask whoever serves it for the bundle or report: "
            "`python -m reasoning export` and `report` where the database lives have no limit.",
            icon=":material/block:")
    return False


facets = library_facets(store)
if not facets["strategies"]:
    st.info("No runs in this database yet. Start one from the Run page (or `python -m reasoning run --strategy cot "
            "--limit 3`), or import a bundle someone shared with you.")
    if not readonly:
        import_widget()
    st.stop()

# --- Filters -----------------------------------------------------------------------------------
with st.expander("Search and filter", expanded=True):
    text = st.text_input("Search", key="library_q", placeholder="name, id, model, strategy or dataset")
    c1, c2, c3 = st.columns(3)
    strategies = c1.multiselect("Strategy", facets["strategies"], key="library_strategy")
    models = c2.multiselect("Model", facets["models"], key="library_model")
    datasets = c3.multiselect("Dataset", facets["datasets"], key="library_dataset")
    c4, c5, c6, c7 = st.columns(4)
    statuses = c4.multiselect("Status", list(RUN_STATUSES), key="library_status")
    tag = c5.selectbox("Tag", [""] + facets["tags"], key="library_tag", format_func=lambda t: t or "any tag")
    day_from = c6.date_input("Created from", value=None, key="library_from")
    day_to = c7.date_input("Created until", value=None, key="library_to")
    c8, c9 = st.columns([2, 1])
    sort_label = c8.selectbox("Sort by", list(SORTS), key="library_sort")

filters = LibraryFilter(
    text=text, strategies=tuple(strategies), models=tuple(models), datasets=tuple(datasets),
    statuses=tuple(statuses), tag=tag or "",
    created_from=datetime.combine(day_from, time.min, timezone.utc) if day_from else None,
    created_to=datetime.combine(day_to, time.max, timezone.utc) if day_to else None,
)
sort, descending = SORTS[sort_label]
_, total = library_runs(store, filters, limit=1)
pages = max(1, -(-total // PAGE_SIZE))
if st.session_state.get("library_page", 1) > pages:  # fewer matches than before: back to the last page
    st.session_state["library_page"] = pages
page = c9.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, step=1, key="library_page")
runs, total = library_runs(store, filters, sort=sort, descending=descending, offset=(int(page) - 1) * PAGE_SIZE,
                           limit=PAGE_SIZE)

st.caption(f"{total} run{'s' * (total != 1)} match · showing {len(runs)} on page {int(page)} of {pages}")
if not runs:
    st.info("No run matches these filters.")
else:
    st.dataframe(
        [{"name": r.name, "strategy": r.strategy, "n": r.n, "model": r.model, "dataset": r.dataset,
          "status": r.status, "problems": f"{r.problems_done}/{r.problems_total}", "accuracy": r.accuracy,
          "tokens": r.tokens, "time": duration(r.wall_seconds), "created": when(r.created_at),
          "id": r.id[:8], "open": tree_link(r.id)} for r in runs],
        hide_index=True, width="stretch", key="library_table",
        column_config={
            "accuracy": st.column_config.ProgressColumn("accuracy", min_value=0.0, max_value=1.0, format="percent"),
            "open": st.column_config.LinkColumn("tree", display_text="open tree"),
        },
    )

# --- Selection and actions ---------------------------------------------------------------------
by_id = {r.id: r for r in runs}
if "library_selected" in st.session_state:  # runs deleted or filtered away drop out of the selection
    st.session_state["library_selected"] = [i for i in st.session_state["library_selected"] if i in by_id]
selected = st.multiselect(
    "Select runs (on this page) to compare, export, edit or delete", list(by_id), key="library_selected",
    format_func=lambda rid: f"{short(by_id[rid].name, 50)} · {by_id[rid].strategy} · {when(by_id[rid].created_at)} · {rid[:8]}",
)

if selected:
    a1, a2, a3 = st.columns(3)
    if len(selected) >= 2:
        a1.markdown(f":material/compare_arrows: [Compare {len(selected)} runs]({compare_link(selected)})")
    else:
        a1.caption("Select two or more runs to compare them.")
    from store.bundle import dump_bundle

    with a2:
        if visitor_may_build(selected, "Export"):
            st.download_button(f"Export {len(selected)} run{'s' * (len(selected) != 1)} (bundle)", icon=":material/download:",
                               # built only when clicked: a bundle of big runs is costly to make on every rerun
                               data=lambda ids=tuple(selected): dump_bundle(store, list(ids)),
                               file_name=f"thinktrace-{selected[0][:8]}{'-and-more' if len(selected) > 1 else ''}.thinktrace.gz",
                               mime="application/gzip", key="library_export")
    if not readonly and a3.button(f"Delete {len(selected)} run{'s' * (len(selected) != 1)}…", icon=":material/delete:",
                                      key="library_delete"):
        st.session_state[CONFIRM] = list(selected)

pending = st.session_state.get(CONFIRM)
if pending and not readonly:
    names = ", ".join(f"“{md_escape(short(by_id[i].name, 40))}”" if i in by_id else i[:8] for i in pending[:5])
    st.warning(f"Delete {len(pending)} run{'s' * (len(pending) != 1)} ({names}{', …' if len(pending) > 5 else ''}) "
               "with every node and result? This cannot be undone.")
    y, n, _ = st.columns([1, 1, 4])
    if y.button("Yes, delete", type="primary", key="library_delete_confirm"):
        count = delete_runs(store, pending)
        st.session_state.pop(CONFIRM, None)
        st.session_state["library_flash"] = f"Deleted {count} run{'s' * (count != 1)}."
        st.rerun()
    if n.button("Cancel", key="library_delete_cancel"):
        st.session_state.pop(CONFIRM, None)
        st.rerun()

if len(selected) == 1:
    run = by_id[selected[0]]
    tags, notes = run_info(store, run.id)
    st.subheader(f"Run {md_escape(run.id[:8])}", anchor=False)
    if readonly:
        st.markdown(f"**{md_escape(run.name)}**" + (f" · tags: {md_escape(', '.join(tags))}" if tags else ""))
        if notes:
            st.text(notes)
    else:
        with st.form("library_edit"):
            new_name = st.text_input("Name", value=run.name, key=f"library_name_{run.id}")
            new_tags = st.text_input("Tags (comma-separated)", value=", ".join(tags), key=f"library_tags_{run.id}")
            new_notes = st.text_area("Notes", value=notes, key=f"library_notes_{run.id}")
            if st.form_submit_button("Save"):
                update_run_info(store, run.id, name=new_name, tags=new_tags.split(","), notes=new_notes)
                st.session_state["library_flash"] = "Saved."
                st.rerun()
    report_key = f"_library_report_{run.id}"
    if visitor_may_build([run.id], "An HTML report") and st.button(
            "Build HTML report", key="library_report_build",
            help="One self-contained file (works offline): summary, budget curve, first three trees."):
        from thinktrace.report import build_report

        try:
            st.session_state[report_key] = build_report(store, run.id).encode("utf-8")  # the first three trees
        except UserError as exc:
            st.error(md_escape(exc))
    if report_key in st.session_state:
        st.download_button("Download HTML report", icon=":material/download:", data=st.session_state[report_key],
                           file_name=f"thinktrace-{run.id[:8]}.html", mime="text/html", key="library_report")

if not readonly:
    st.divider()
    import_widget()
