"""ThinkTrace in the browser. Pages stay thin: they read the store and draw figures from viz/."""
from __future__ import annotations

import streamlit as st

from store.db import describe, resolve_url
from store.queries import list_runs

st.set_page_config(page_title="ThinkTrace", page_icon="🌳", layout="wide")


def home() -> None:
    st.title("ThinkTrace")
    st.markdown(
        "ThinkTrace shows how language models reason when they are given more compute at test time. "
        "It runs strategies such as chain-of-thought, self-consistency and best-of-N with a verifier, "
        "and stores every step of every path so you can walk the trees and compare the budgets."
    )
    url = resolve_url()
    runs = list_runs(url)
    if not runs:
        st.info("No runs yet. Start one from a terminal: `python -m reasoning run --strategy cot --limit 3`")
        return
    st.subheader("Recent runs")
    st.dataframe(
        [{"name": r.name, "strategy": r.strategy, "n": r.n, "model": r.model, "status": r.status,
          "done": f"{r.problems_done}/{r.problems_total}",
          "accuracy": None if r.accuracy is None else round(100 * r.accuracy, 1),
          "created": r.created_at.strftime("%Y-%m-%d %H:%M")} for r in runs[:20]],
        hide_index=True,
    )


with st.sidebar:
    st.caption(f"Database: `{describe(resolve_url())}`")

st.navigation([st.Page(home, title="Home", icon="🏠", default=True)]).run()
