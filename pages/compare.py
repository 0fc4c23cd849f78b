"""Compare: two or more runs on the same problems. Who solved what, at what cost, and how their
trees differ on one problem."""
from __future__ import annotations

import html

import numpy as np
import streamlit as st

from reasoning.errors import UserError

from pages._tasks import answer_md, show_task, show_value
from pages.common import (cached, empty_state, finite, int_param, md_escape, open_store, run_label, run_set,
                          runs_version, set_runs, share_box, short)
from reasoning.fewshot import is_task
from viz.grids import answer_label
from store.analysis import outcomes, shared_summary
from store.runs import list_runs, run_problems, tree_nodes
from viz.compare import cost_accuracy_figure, outcome_matrix_figure, outcome_value
from viz.tree import tree_figure

st.title("Compare")
store = open_store()
runs = list_runs(store)
if len(runs) < 2:
    empty_state("Comparing needs at least two runs on the same problems, e.g. cot and self_consistency on "
                "arith:2 with the same limit and seed. Start them on the Run page.")
    st.stop()
by_id = {r.id: r for r in runs}

# Default: the link's runs (`?runs=a,b,…`; `?run=` is read too), else the newest run plus the newest
# other run on the same dataset (else the two newest runs).
linked = [rid for rid in run_set(store) if rid in by_id]
first = linked[0] if linked else runs[0].id
same = [r.id for r in runs if r.id != first and r.dataset == by_id[first].dataset]
default = linked if len(linked) > 1 else [first, (same or [r.id for r in runs if r.id != first])[0]]
link = ",".join(linked) or None
if "compare_runs" not in st.session_state or (link and st.session_state.get("_compare_link") != link):
    st.session_state["compare_runs"] = default
    st.session_state["_compare_link"] = ",".join(default)
chosen = st.multiselect("Runs to compare", list(by_id), format_func=lambda rid: run_label(by_id[rid]),
                        key="compare_runs")
if len(chosen) < 2:
    st.info("Pick at least two runs.")
    st.stop()
set_runs(chosen)
st.session_state["_compare_link"] = ",".join(chosen)
share = st.container()  # filled at the end, once the problem is in the URL too

version = runs_version(*(by_id[rid] for rid in chosen))
rows = cached(outcomes, store, chosen, version=version)
summary = {s.run_id: s for s in cached(shared_summary, store, chosen, version=version)}
shared_n = summary[chosen[0]].problems
if shared_n == 0:
    st.warning("These runs have no finished problem in common: compare runs on the same dataset (same problem "
               "set, limit and seed).")

labels = {rid: short(by_id[rid].name, 40) + ("" if by_id[rid].strategy in by_id[rid].name else f" · {by_id[rid].strategy}")
          for rid in chosen}
st.markdown(f"#### Summary over the {shared_n} problems all of them finished")
table = []
for rid in chosen:
    s = summary[rid]
    table.append({"run": labels[rid], "verifier": by_id[rid].verifier or "–",
                  "accuracy": s.correct / s.graded if s.graded else None,
                  "right": f"{s.correct}/{s.graded}", "tokens / problem": finite(s.tokens_per_problem),
                  "s / problem": finite(s.seconds_per_problem)})
st.dataframe(table, hide_index=True, width="stretch", column_config={
    "accuracy": st.column_config.ProgressColumn("accuracy", min_value=0.0, max_value=1.0, format="percent"),
    "tokens / problem": st.column_config.NumberColumn(format="%.0f"),
    "s / problem": st.column_config.NumberColumn(format="%.2f")})
with st.expander("Accuracy against tokens", expanded=len(chosen) > 2):
    st.plotly_chart(cost_accuracy_figure([labels[r] for r in chosen],
                                         [summary[r].tokens_per_problem for r in chosen],
                                         [t["accuracy"] for t in table]), width="stretch", key="cost")

if len(chosen) >= 2 and shared_n:
    from thinktrace.compare import compare_runs

    st.markdown("#### Is the difference real?")
    pairs = [(chosen[0], other) for other in chosen[1:]]
    for a, b in pairs:
        try:
            test = compare_runs(store, a, b, rows)
        except UserError as exc:
            st.caption(md_escape(exc))
            continue
        line = md_escape(test.sentence(labels[a], labels[b]))
        (st.success if test.significant else st.info)(line)
    st.caption("Paired over the problems both runs graded: exact McNemar test on the problems only one run "
               "solved, and a bootstrap CI of the accuracy difference (resampling problems). Not significant "
               "means these problems cannot tell the runs apart, not that they are equal.")

st.markdown("#### Which run solved what")
# Problems are matched by identity (dataset + key), not by position; shown in run order.
first_pos: dict[int, int] = {}
for o in rows:
    first_pos[o.problem_id] = min(first_pos.get(o.problem_id, o.position), o.position)
positions = sorted(first_pos, key=lambda pid: (first_pos[pid], pid))  # problem ids
col = {pid: i for i, pid in enumerate(positions)}
question = {o.problem_id: o.question for o in rows}
z = np.full((len(chosen), len(positions)), np.nan)
hover = np.full(z.shape, "not run", dtype=object)
row_of = {rid: i for i, rid in enumerate(chosen)}
for o in rows:
    i, j = row_of[o.run_id], col[o.problem_id]
    z[i, j] = outcome_value(o.correct)
    mark = {True: "right", False: "wrong", None: "no gold"}[o.correct]
    hover[i, j] = (f"#{o.position + 1} {mark}: answer {html.escape(answer_label(o.answer))} "
                   f"(gold {'–' if o.gold is None else html.escape(answer_label(o.gold))})"
                   f"<br>{html.escape(short(o.question, 70))}<br>{o.tokens} tokens")
if positions:
    st.plotly_chart(outcome_matrix_figure([labels[r] for r in chosen], [str(first_pos[p] + 1) for p in positions], z, hover),
                    width="stretch", key="matrix")
    both = np.nan_to_num(z, nan=-1)
    only = {rid: int(((both[row_of[rid]] == 1) & (np.delete(both, row_of[rid], axis=0) != 1).all(axis=0)).sum())
            for rid in chosen}
    st.caption("Green right, red wrong, grey no gold answer, blank not run. Solved by this run alone: "
               + ", ".join(f"{md_escape(labels[r])}: {only[r]}" for r in chosen))
else:
    st.info("No finished problems in these runs yet.")

st.markdown("#### Two trees side by side")
common = sorted(set.intersection(*[{o.problem_id for o in rows if o.run_id == rid} for rid in chosen[:2]]),
                key=lambda pid: first_pos[pid])
if not common:
    st.info("The first two runs share no finished problem.")
    with share:
        share_box()
    st.stop()
wanted = int_param("problem")
by_number = {first_pos[pid] + 1: pid for pid in common}
default_pid = by_number.get(wanted, common[0])
pid = st.selectbox("Problem", common, index=common.index(default_pid),
                   format_func=lambda p: f"#{first_pos[p] + 1} {short(question.get(p, ''), 90)}", key="compare_problem")
if int_param("problem") != first_pos[pid] + 1:
    st.query_params["problem"] = str(first_pos[pid] + 1)
both = {rid: {p.problem_id: p for p in cached(run_problems, store, rid, version=runs_version(by_id[rid]))}.get(pid)
        for rid in chosen[:2]}
shown = next((p for p in both.values() if p is not None), None)
task = shown is not None and is_task(shown)
if task:
    show_task(shown, with_answer=False)  # each run's answer is drawn in its column
cols = st.columns(2, gap="medium")
for c, rid in zip(cols, chosen[:2]):
    p = both[rid]
    with c:
        verdict = {True: ":green[✓ right]", False: ":red[✗ wrong]", None: "ungraded"}[p.correct] if p else ""
        answer = (answer_md(p.answer) if task else md_escape(p.answer)) if p and p.answer is not None else "–"
        st.markdown(f"**{md_escape(labels[rid])}** · answer **{answer}** {verdict}")
        if task and p is not None and p.answer is not None:
            show_value(p.answer, outline=p.correct)
        if p is not None:
            nodes = cached(tree_nodes, store, rid, p.problem_id, version=True if p.done else None)
            st.plotly_chart(tree_figure(nodes, gold=p.gold, height=460),
                            width="stretch", key=f"side_{rid}")
with share:
    share_box()
