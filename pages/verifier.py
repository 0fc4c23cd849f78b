"""Verifier: can its scores be trusted? Right vs wrong score distributions, ROC AUC, calibration,
score trajectories, and the paths where verifier and gold disagree most."""
from __future__ import annotations

import streamlit as st

from pages.common import (cached, empty_state, finite, md_escape, open_store, run_label, run_set, runs_version,
                          set_runs, share_box, short, tree_link)
from store.analysis import final_paths, scored_steps
from store.runs import list_runs
from viz.scores import (calibration_figure, roc_auc, roc_figure, score_histogram, step_score_paths,
                        trajectory_figure)

st.title("Verifier")
st.caption("Every path that ended with an answer, its verifier path score, and whether the answer was right. "
           "A good verifier scores right paths high and wrong ones low; then best-of-N and tree search pay off.")
store = open_store()
runs = [r for r in list_runs(store) if r.verifier]
if not runs:
    empty_state("No run with a verifier yet. Start one on the Run page with a verifier (self_eval, oracle or a "
                "PRM), e.g. best_of_n, and its scores show up here.")
    st.stop()

by_id = {r.id: r for r in runs}
linked = run_set(store)  # `?run=ID` or `?runs=ID,ID`
if any(rid not in by_id for rid in linked):
    st.warning("A run in the link has no verifier scores: pick a run with a verifier.")
linked = [rid for rid in linked if rid in by_id]
link = ",".join(linked)
if "verifier_runs" not in st.session_state or (link and st.session_state.get("_verifier_link") != link):
    st.session_state["verifier_runs"] = linked or [runs[0].id]  # a new link wins over the previous choice
else:  # runs deleted since the last rerun drop out of the choice
    st.session_state["verifier_runs"] = [rid for rid in st.session_state["verifier_runs"] if rid in by_id]
chosen = st.multiselect("Runs", list(by_id), format_func=lambda rid: run_label(by_id[rid]), key="verifier_runs")
if not chosen:
    st.info("Pick one or more runs above.")
    st.stop()
set_runs(chosen)
st.session_state["_verifier_link"] = ",".join(chosen)
share_box()

version = runs_version(*(by_id[rid] for rid in chosen))
paths = cached(final_paths, store, chosen, version=version)
graded = [p for p in paths if p.path_score is not None and p.correct is not None]
if not graded:
    st.info("These runs have no scored paths with a known outcome yet (no gold answers, or still running).")
    st.stop()

label = {rid: f"{short(by_id[rid].name, 40)} ({by_id[rid].verifier})" for rid in chosen}
groups = [(label[rid], [p.path_score for p in graded if p.run_id == rid], [p.correct for p in graded if p.run_id == rid])
          for rid in chosen]

cols = st.columns(len(groups) + 1 if len(groups) < 4 else 4)
cols[0].metric("Scored final paths", len(graded), help="Paths that ended with an answer, with a score and a gold answer.")
for col, (name, scores, labels) in zip(cols[1:], groups):
    auc = roc_auc(scores, labels)
    col.metric(f"ROC AUC · {md_escape(short(name, 28))}", "n/a" if auc is None else f"{auc:.2f}",
               help="Chance that a right path outscores a wrong one (0.5: no better than chance). "
                    "n/a when all answers are right or all wrong.")

left, right = st.columns(2, gap="medium")
with left:
    st.markdown("#### Score of right vs wrong answers")
    st.plotly_chart(score_histogram(groups), width="stretch", key="hist")
with right:
    st.markdown("#### ROC curve")
    st.plotly_chart(roc_figure(groups), width="stretch", key="roc")
left, right = st.columns(2, gap="medium")
with left:
    st.markdown("#### Calibration")
    st.caption("Fraction right per score bin; on the diagonal, a score of 0.7 means right 70% of the time.")
    st.plotly_chart(calibration_figure(groups), width="stretch", key="calibration")
with right:
    st.markdown("#### Score along the steps")
    st.caption("Each line a final path; bold: mean per step. Early separation is what step-level search needs.")
    trajectories = step_score_paths(cached(scored_steps, store, chosen, version=version),
                                    [(fp.run_id, fp.problem_id, fp.seq, fp.correct) for fp in graded])
    st.plotly_chart(trajectory_figure(trajectories), width="stretch", key="trajectories")

st.markdown("#### Worst disagreements with the gold answer")
st.caption("Wrong answers the verifier liked most, and right answers it liked least. Open one to see its path.")
wrong = sorted((p for p in graded if not p.correct), key=lambda p: -p.path_score)[:6]
right_ = sorted((p for p in graded if p.correct), key=lambda p: p.path_score)[:6]
rows = [{"kind": "high score, wrong" if not p.correct else "low score, right", "score": finite(p.path_score),
         "answer": p.answer if p.answer is not None else "–", "gold": p.gold, "question": short(p.question, 90),
         "run": short(by_id[p.run_id].name, 30), "problem": p.position + 1,
         "open": tree_link(p.run_id, p.position, p.seq)} for p in wrong + right_]
if rows:
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "score": st.column_config.ProgressColumn("score", min_value=0.0, max_value=1.0, format="%.2f"),
        "open": st.column_config.LinkColumn("tree", display_text="open path"),
    })
