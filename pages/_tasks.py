"""Tasks with demonstrations on the pages (Tree, Run, Compare): the task drawn as grids of ARC's
colours, answers and steps as grids, and a test-time training tree's training curve and vote. The
figures and HTML come from viz/grids.py; this module only places them (st.html is sanitized by
Streamlit; every text in it is escaped by viz.grids)."""
from __future__ import annotations

import streamlit as st

from pages.common import md_escape, num
from viz.grids import (answer_label, attempts_of, loss_figure, predictions, predictions_html, task_html, task_values,
                       training_of, value_html, vote_figure, vote_table)


def show_task(problem, *, with_answer: bool = True, cell: int = 16) -> None:
    """A stored problem with demonstrations (store.runs.RunProblemRow): demonstrations in -> out, the
    test input, the gold output and the run's answer (when it is finished and `with_answer`), drawn as
    grids; the text the model reads folded below."""
    values = task_values(problem.meta)
    if values is None:  # not a well-formed task (an imported file): the text as it is
        st.markdown(f"**Question:** {md_escape(problem.question)}")
        st.caption("This task's demonstrations are malformed, so they are not drawn.")
        return
    demos, test_input = values
    done = with_answer and getattr(problem, "done", True)
    st.html(task_html(demos, test_input, gold=problem.gold, answer=problem.answer if done else None,
                      correct=problem.correct if done else None, cell=cell, answer_label="run answer"))
    with st.expander("The task as the model reads it"):
        st.code(problem.question, language=None)


def answer_md(answer: str | None) -> str:
    """An answer on one line for markdown: a grid as its rows joined by "/"."""
    return md_escape(answer_label(answer)) if answer is not None else "–"


def show_value(value, cell: int = 16, outline: bool | None = None) -> None:
    colour = None if outline is None else ("#1a9850" if outline else "#d73027")
    st.html(value_html(value, cell, colour, empty="no answer"))


def show_node_text(text: str) -> bool:
    """A step that holds a grid: the grid drawn, the raw text in small print below. False (nothing
    drawn) when the text holds no grid."""
    from reasoning.grids import parse_grid

    grid = parse_grid(text or "")
    if grid is None:
        return False
    st.html(value_html(grid, 14))
    st.caption(f"wrote: `{md_escape(text.strip()[:200])}`")
    return True


def is_ttt_tree(nodes) -> bool:
    return bool(predictions(nodes))


def show_ttt(nodes, result_meta: dict, key: str) -> None:
    """A ttt tree: what training did (set size, steps, tokens, seconds) and its loss per step, then
    each augmented prediction (raw and mapped back, right or wrong) and the vote, ARC's two attempts."""
    training = training_of(nodes[0].meta) if nodes else None
    rows = predictions(nodes)
    attempts = attempts_of(result_meta)
    st.markdown("#### Test-time training")
    left, right = st.columns(2, gap="medium")
    with left:
        if not training:
            st.info("Training has not finished for this task yet.")
        elif not training["steps"]:
            st.markdown("**No training** (ttt_steps 0): the model answered in context, from the demonstrations alone.")
        else:
            st.caption(f"{md_escape(training['method'])} fine-tuning on {training['examples']} leave-one-out "
                       f"tasks · {training['steps']} steps · {training['tokens']:,} tokens trained on · "
                       f"{training['trainable_params']:,} trainable parameters · {num(training['seconds'])} s")
            st.plotly_chart(loss_figure(training["losses"]), key=f"ttt_loss_{key}", width="stretch")
    with right:
        table = vote_table(rows)
        if table:
            st.plotly_chart(vote_figure(table), key=f"ttt_vote_{key}", width="stretch")
        else:
            st.info("No prediction wrote a grid: nothing to vote on.")
        if attempts:
            marks = []
            for i, answer in enumerate(attempts):
                right_ = next((r["correct"] for r in rows if r["answer"] == answer), None)
                verdict = {True: " ✓", False: " ✗", None: ""}[right_]
                marks.append(f"attempt {i + 1}: **{answer_md(answer)}**{verdict}")
            pass2 = (result_meta or {}).get("pass_at_2")
            st.markdown("ARC's two attempts (the two most voted answers): " + " · ".join(marks)
                        + ("" if pass2 is None else f" — pass@2 **{'yes' if pass2 else 'no'}**"))
    st.markdown(f"**The {len(rows)} augmented predictions**, each on the task transformed (what the model wrote), "
                "then mapped back by the inverse transformation and voted on:")
    st.html(predictions_html(rows, attempts))

