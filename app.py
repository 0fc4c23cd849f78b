"""ThinkTrace in the browser. Pages stay thin: they read the store and draw figures from viz/.

To add a page, append one `st.Page` to PAGES (a file under pages/ or a function).
"""
from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="ThinkTrace", page_icon=":material/account_tree:", layout="wide")

# A small run that shows a whole search on the lab pair in seconds on a laptop CPU: best-of-8 picked
# by the lab PRM on level-4 problems, where one greedy answer is right about 60% of the time.
DEMO = dict(strategy="best_of_n", dataset="arith:4", limit=10, model="lab", verifier="prm:lab",
            knobs={"n": 8, "max_new_tokens": 256})


def home() -> None:
    from pages.common import RUN_PAGE, duration, open_store, tree_link, when
    from reasoning.backends import MODELS
    from thinktrace.settings import read_only
    from store.runs import list_runs

    st.title("ThinkTrace")
    st.markdown(
        "ThinkTrace shows how a language model reasons when it is given more compute at test time. "
        "It runs strategies such as chain-of-thought, self-consistency and best-of-N with a verifier, "
        "and stores every step of every path, the pruned ones too. "
        "Walk the search trees, check how far the verifier's scores can be trusted, and compare what each "
        "strategy buys for its tokens."
    )
    store = open_store()
    runs = list_runs(store)
    left, mid, right = st.columns(3)
    left.metric("Runs in this database", len(runs))
    mid.metric("Default model", "lab reasoner", help=f"{MODELS['lab'].name}, with its PRM (prm:lab): ships with "
               f"ThinkTrace, no download. {MODELS['smollm2'].name} is the other embedded model (--model smollm2).")
    right.metric("Running now", sum(r.status == "running" for r in runs))
    st.caption(f"Database: `{store.describe()}` (set `THINKTRACE_DB` to use another)")

    if read_only():
        st.info("This app is shared read-only: browse the runs below and their trees; runs are started "
                "elsewhere (`python -m reasoning run …` on your own machine).", icon=":material/lock:")
    else:
        st.subheader("Try it")
        n = DEMO["knobs"]["n"]
        st.markdown(f"Start a small demo: **best-of-{n}** on {DEMO['limit']} four-step arithmetic problems: "
                    f"the embedded lab reasoner samples {n} solutions per problem and its process reward "
                    f"model picks one. It takes seconds; you will watch the trees grow on the Run page, and the "
                    f"**Learn** page explains what you see.")
        if st.button("Start a demo run", icon=":material/play_arrow:", type="primary"):
            from thinktrace.launch import RunSpec, start_run

            spec = RunSpec(**DEMO, name="demo: best-of-8 with the lab PRM on level-4 arithmetic")
            launch = start_run(spec, store.url)
            st.switch_page(RUN_PAGE, query_params={"run": launch.run_id})

    st.subheader("Recent runs")
    if not runs:
        st.info("No runs yet. " + ("Start them where this app's database lives: " if read_only() else
                "Start the demo above, open the **Run** page, or run ") +
                "`python -m reasoning run --strategy cot --limit 3` in a terminal.")
        return
    st.dataframe(
        [{"run": r.name, "status": r.status, "strategy": r.strategy, "n": r.n, "verifier": r.verifier or "–", "model": r.model,
          "problems": f"{r.problems_done}/{r.problems_total}",
          "accuracy": None if r.accuracy is None else r.accuracy,
          "tokens": r.tokens, "time": duration(r.wall_seconds), "created": when(r.created_at),
          "open": tree_link(r.id)} for r in runs[:20]],
        hide_index=True, width="stretch",
        column_config={
            "accuracy": st.column_config.ProgressColumn("accuracy", min_value=0.0, max_value=1.0, format="percent"),
            "open": st.column_config.LinkColumn("tree", display_text="open tree"),
        },
    )


def sidebar() -> None:
    from thinktrace.settings import read_only
    from store import Store
    from store.db import resolve_url

    with st.sidebar:  # names the database without opening it (the Learn page needs none)
        st.caption(f"Database  \n`{Store(resolve_url()).describe()}`")
        if read_only():
            st.caption(":material/lock: **read-only**: running, deleting and importing are turned off "
                       "(THINKTRACE_READONLY)")


# The app's pages, in menu order. Append one entry to add a page.
PAGES = [
    st.Page(home, title="Home", icon=":material/home:", default=True),
    st.Page("pages/run.py", title="Run", icon=":material/play_circle:"),
    st.Page("pages/tree.py", title="Tree", icon=":material/account_tree:"),
    st.Page("pages/verifier.py", title="Verifier", icon=":material/balance:"),
    st.Page("pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("pages/library.py", title="Library", icon=":material/library_books:"),
    st.Page("pages/budget.py", title="Budget", icon=":material/trending_up:"),
    st.Page("pages/learn.py", title="Learn", icon=":material/school:"),
]

sidebar()
st.navigation(PAGES).run()
