"""A run as one self-contained HTML file: summary, budget curve and the trees of a few problems.

The file needs no server and no network: plotly.js is inlined once (about 4.5 MB) and every figure
is drawn from JSON embedded in the page, so it opens offline, by e-mail or from a paper's supplement.
Everything that came from a model or a user (step texts, names, questions, notes) is escaped with
html.escape; plotly hover texts are escaped by viz.tree.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Sequence

from reasoning.errors import UserError
from store import Store
from store import models as m
from store.curves import run_samples
from store.runs import RunProblemRow, get_run, run_problems, run_summary, tree_nodes

MAX_LISTED_STEPS = 400  # per problem, in the "all steps" table (the tree shows every node)


def build_report(store: Store, run_id: str, positions: Sequence[int] | None = None) -> str:
    """The report's HTML text. `positions` are the run's problem positions whose trees to include
    (default: the first three, or all of a shorter run)."""
    summary = run_summary(store, run_id)
    run = get_run(store, run_id)
    by_position = {p.position: p for p in run_problems(store, run_id)}
    if positions is None:
        positions = sorted(by_position)[:3]
    missing = [p for p in positions if p not in by_position]
    if missing:
        raise UserError(f"run {run_id[:8]} has no problem at position {missing[0]} "
                        f"(it has {len(by_position)}: positions 0..{len(by_position) - 1})")
    figures: list[str] = []  # plotly divs; the first carries plotly.js

    def add_figure(fig) -> str:
        div = fig.to_html(full_html=False, include_plotlyjs=not figures, div_id=f"fig{len(figures)}",
                          config={"displaylogo": False, "responsive": True})
        figures.append(div)
        return div

    sections = [_summary_section(summary, run), _curve_section(store, run, summary, add_figure)]
    for position in positions:
        sections.append(_problem_section(store, run_id, by_position[position], add_figure))
    title = html.escape(summary.name or f"run {run_id[:8]}")
    return _PAGE.format(title=title, body="\n".join(sections), run_id=html.escape(run_id))


def write_report(store: Store, run_id: str, path: str | Path, positions: Sequence[int] | None = None) -> int:
    """Write the report; returns its size in bytes."""
    text = build_report(store, run_id, positions)
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror}") from None
    return len(text.encode("utf-8"))


def _summary_section(s, run: m.Run) -> str:
    accuracy = "n/a (no gold answers)" if s.accuracy is None else f"{s.correct}/{s.graded} = {100 * s.accuracy:.1f}%"
    if s.evaluation_only:
        accuracy += " (oracle verifier: an upper bound)"
    facts = [("run id", s.id), ("strategy", s.strategy), ("samples / beams (n)", s.n if s.n is not None else "–"),
             ("model", s.model), ("verifier", s.verifier or "none"), ("dataset", s.dataset), ("seed", s.seed),
             ("status", s.status), ("problems", f"{s.problems_done}/{s.problems_total}"), ("accuracy", accuracy),
             ("generated tokens", f"{s.tokens:,}"), ("model calls", s.model_calls),
             ("wall time", f"{s.wall_seconds:.1f} s"), ("created", s.created_at.strftime("%Y-%m-%d %H:%M UTC")),
             ("ThinkTrace", run.app_version or "–")]
    if run.tags:
        facts.append(("tags", ", ".join(run.tags)))
    table = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>" for k, v in facts)
    notes = f"<p class='notes'>{html.escape(run.notes)}</p>" if run.notes else ""
    params = html.escape(json.dumps(run.params, indent=2, ensure_ascii=False, default=str))
    return (f"<section><h2>Summary</h2><table class='facts'>{table}</table>{notes}"
            f"<details><summary>Settings to reproduce this run</summary><pre>{params}</pre></details></section>")


def _curve_section(store: Store, run: m.Run, summary, add_figure) -> str:
    """The budget curve when every problem has the same N > 1 parallel samples."""
    from reasoning.estimators import curve_points
    from thinktrace.curves import run_points
    from viz.curves import budget_figure

    samples = run_samples(store, run.id)  # as the Budget page reads them: one answer grouping
    sizes = {len(p.samples) for p in samples}
    if not samples or sizes == {1}:
        return ""
    if len(sizes) != 1:
        return ("<section><h2>Accuracy vs budget</h2><p class='muted'>No budget curve: problems have different "
                "numbers of final samples (a tree search); compare a sweep of runs instead.</p></section>")
    try:
        points = curve_points(samples, n_boot=500)
    except ValueError as exc:
        return f"<section><h2>Accuracy vs budget</h2><p class='muted'>No budget curve: {html.escape(str(exc))}</p></section>"
    points = run_points(run, points)
    caption = (f"model: {summary.model} · verifier: {summary.verifier or 'none'} · problems: "  # escaped by the figure
               f"{points[0].n_problems} ({summary.dataset}) · seed: {summary.seed} · 95% bootstrap CIs over problems")
    div = add_figure(budget_figure(points, "samples", caption=caption, height=460))
    return ("<section><h2>Accuracy vs budget</h2><p class='muted'>Had we sampled only k of the "
            f"{sizes.pop()} samples per problem: expected accuracy over many k-subsets, with 95% bootstrap "
            f"intervals over {points[0].n_problems} graded problems.</p>{div}</section>")


def _problem_section(store: Store, run_id: str, problem: RunProblemRow, add_figure) -> str:
    from reasoning.fewshot import is_task
    from viz.grids import answer_label, task_html, task_values, value_html
    from viz.tree import path_of, tree_figure

    position = problem.position
    nodes = tree_nodes(store, run_id, problem.problem_id)
    chosen = problem.node_seq if problem.done else None
    values = task_values(problem.meta) if is_task(problem) else None
    task = values is not None
    fig = tree_figure(nodes, gold=problem.gold, title=f"problem {position}: {problem.key}")
    head = f"<h2>Problem {position} <span class='muted'>{html.escape(problem.key)}</span></h2>"
    if task:  # demonstrations, test input, gold and answer as grids; the text the model read folded
        demos, test_input = values
        head += (task_html(demos, test_input, gold=problem.gold, answer=problem.answer if problem.done else None,
                           correct=problem.correct if problem.done else None, answer_label="run answer")
                 + f"<details><summary>The task as the model reads it</summary><pre>{html.escape(problem.question)}"
                   "</pre></details>")
    else:
        head += f"<p class='question'>{html.escape(problem.question)}</p>"
    shown = (lambda a: html.escape(answer_label(a))) if task else (lambda a: html.escape(str(a)))
    if not problem.done:
        outcome = "<p class='muted'>Not finished in this run.</p>"
    else:
        mark = {True: "<span class='right'>right</span>", False: "<span class='wrong'>wrong</span>"}.get(problem.correct, "")
        gold = "none (not graded)" if problem.gold is None else shown(problem.gold)
        outcome = (f"<p>Answer <b>{shown(problem.answer)}</b> {mark} · gold "
                   f"<b>{gold}</b> · {problem.tokens:,} tokens</p>")
    outcome += _ttt_html(nodes, problem, add_figure)  # "" unless a ttt tree
    path = path_of(nodes, chosen) if chosen is not None else []
    steps = "".join(f"<li>{_step(n, value_html if task else None)}</li>" for n in path if n.parent_seq is not None)
    path_html = f"<h3>Chosen path</h3><ol class='steps'>{steps}</ol>" if steps else ""
    listed = nodes[:MAX_LISTED_STEPS]
    rows = "".join(
        f"<tr><td>{n.seq}</td><td>{'' if n.parent_seq is None else n.parent_seq}</td><td>{html.escape(n.status)}</td>"
        f"<td>{_num(n.score)}</td><td>{n.tokens}</td><td class='text'>{html.escape(n.text)}</td></tr>" for n in listed)
    more = f"<p class='muted'>First {MAX_LISTED_STEPS} of {len(nodes)} nodes listed.</p>" if len(nodes) > len(listed) else ""
    table = (f"<details><summary>All {len(nodes)} nodes with their text</summary>{more}<table class='nodes'>"
             "<tr><th>seq</th><th>parent</th><th>status</th><th>score</th><th>tokens</th><th>text</th></tr>"
             f"{rows}</table></details>")
    return f"<section>{head}{outcome}{add_figure(fig)}{path_html}{table}</section>"


def _ttt_html(nodes, problem: RunProblemRow, add_figure) -> str:
    """A test-time training tree: its loss per step, the vote and every augmented prediction."""
    from viz.grids import attempts_of, loss_figure, predictions, predictions_html, training_of, vote_figure, vote_table

    rows = predictions(nodes)
    if not rows:
        return ""
    training = training_of(nodes[0].meta) or {}
    out = "<h3>Test-time training</h3>"
    if training.get("steps"):
        out += (f"<p class='muted'>{html.escape(training['method'])} fine-tuning on {training['examples']} "
                f"leave-one-out tasks · {training['steps']} steps · {training['tokens']:,} tokens trained on</p>")
        out += add_figure(loss_figure(training["losses"]))
    else:
        out += "<p class='muted'>No training (ttt_steps 0): in context only.</p>"
    table = vote_table(rows)
    if table:
        out += add_figure(vote_figure(table))
    return out + predictions_html(rows, attempts_of(problem.result_meta))


def _step(node, draw=None) -> str:
    """One step of the chosen path; `draw` (viz.grids.value_html) draws a grid answer as cells."""
    answer = f" → answer <b>{html.escape(str(node.answer))}</b>" if node.answer is not None else ""
    if draw is not None and node.answer is not None:
        answer = f" → answer {draw(node.answer)}"
    return (f"<div class='step'><span class='muted'>score {_num(node.score)} · {node.tokens} tokens{answer}</span>"
            f"<pre>{html.escape(node.text)}</pre></div>")


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · ThinkTrace report</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2rem auto;
       padding: 0 1rem; color: #222; }}
h1 {{ margin-bottom: .2rem; }} h2 {{ border-bottom: 1px solid #e3e5e8; padding-bottom: .3rem; margin-top: 2rem; }}
table.facts th {{ text-align: left; padding-right: 1.5rem; font-weight: 600; color: #555; }}
table.nodes {{ border-collapse: collapse; font-size: .85rem; width: 100%; }}
table.nodes td, table.nodes th {{ border-bottom: 1px solid #eee; padding: .2rem .4rem; vertical-align: top; }}
td.text {{ white-space: pre-wrap; }} pre {{ white-space: pre-wrap; margin: .2rem 0; font-family: inherit; }}
.muted {{ color: #777; font-size: .9rem; }} .right {{ color: #1a9850; font-weight: 600; }}
.wrong {{ color: #d73027; font-weight: 600; }} .question {{ font-size: 1.05rem; white-space: pre-wrap; }}
ol.steps li {{ margin-bottom: .5rem; }} .notes {{ background: #f6f7f9; padding: .6rem; white-space: pre-wrap; }}
</style></head>
<body>
<h1>{title}</h1>
<p class="muted">ThinkTrace report of run {run_id}. Self-contained: works offline. Hover a node for its step,
score and tokens; drag to pan, scroll to zoom.</p>
{body}
</body></html>
"""
