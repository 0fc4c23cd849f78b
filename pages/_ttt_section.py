"""The Budget page's "Test-time training" section (issue 19): when the runs shown include ttt runs on
the same tasks, accuracy against TTT steps (0 = in context) and against the number of augmented
predictions voted over, with 95% bootstrap intervals (thinktrace/ttt.py computes, viz/ttt.py draws)."""
from __future__ import annotations

import streamlit as st

from pages.common import md_escape
from reasoning.errors import UserError
from store import Store
from thinktrace.ttt import load_ttt
from viz.ttt import ttt_figure

TTT_COMMAND = ("for steps in 0 8 24; do\n  python -m reasoning run --strategy ttt --model lab-arc --dataset arclab:test "
               "--limit 50 --n 8 --ttt-steps $steps\ndone")


@st.cache_data(ttl=10, show_spinner="Recounting the votes…", hash_funcs={Store: lambda store: store.url})
def _ttt(store: Store, run_ids: tuple[str, ...]):
    return load_ttt(store, list(run_ids))


def ttt_section(store: Store, run_ids) -> None:
    """Nothing when none of `run_ids` is a ttt run."""
    if not run_ids:
        return
    try:
        curves = _ttt(store, tuple(run_ids))
    except UserError as exc:
        st.subheader("Test-time training")
        st.warning(md_escape(exc))
        return
    if curves is None:
        return
    st.subheader("Test-time training")
    st.caption(f"{len(curves.run_ids)} ttt runs on the {curves.n_problems} tasks all of them finished and graded. "
               "Left: accuracy against the steps of training on each task's own demonstrations (0 = in context, "
               "no training). Right: the vote over a run's first k augmented predictions (identity first; most "
               "votes wins, ties to the earlier prediction), recounted from the stored predictions; at k = n it is "
               "the run's own answer. Bars: 95% bootstrap intervals over tasks.")
    for note in curves.notes:
        st.info(md_escape(note))
    left, right = st.columns(2)
    with left:
        if len({p.x for p in curves.by_steps}) > 1:
            st.plotly_chart(ttt_figure(curves.by_steps, "TTT steps", "Accuracy against TTT steps"),
                            key="budget_ttt_steps", width="stretch")
        else:
            st.markdown(f"Runs at other step counts draw the curve against steps:\n\n```\n{TTT_COMMAND}\n```")
    with right:
        if len({p.x for p in curves.by_predictions}) > 1:
            st.plotly_chart(ttt_figure(curves.by_predictions, "augmented predictions voted over",
                                       "Accuracy against augmented predictions"),
                            key="budget_ttt_predictions", width="stretch")
        else:
            st.markdown("Every run made one prediction: runs with `--n 8` vote over eight augmentations.")
    rows = [{"view": "TTT steps", "curve": p.curve, "x": p.x, "accuracy": p.accuracy, "CI low": p.ci_low,
             "CI high": p.ci_high, "tasks": p.n_problems, "runs": ", ".join(r[:8] for r in p.runs)}
            for p in curves.by_steps]
    rows += [{"view": "predictions voted", "curve": p.curve, "x": p.x, "accuracy": p.accuracy, "CI low": p.ci_low,
              "CI high": p.ci_high, "tasks": p.n_problems, "runs": ", ".join(r[:8] for r in p.runs)}
             for p in curves.by_predictions]
    with st.expander("The numbers"):
        st.dataframe(rows, hide_index=True, width="stretch", key="budget_ttt_table",
                     column_config={c: st.column_config.NumberColumn(format="percent")
                                    for c in ("accuracy", "CI low", "CI high")})
