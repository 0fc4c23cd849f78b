"""Grids drawn as coloured cells (ARC's palette), for every place a task, an answer or a step is shown:
the Tree, Run, Compare and Learn pages (st.html) and the offline HTML report. Pure builders: data in,
an HTML string or a plotly Figure out.

A grid is drawn as one inline CSS grid of coloured cells (`<span class="tt-grid" role="img"
aria-label="grid 1x6: 031319">`, one <span> per cell), with inline styles only (no stylesheet, no
script, no SVG: Streamlit's HTML sanitizer removes SVG), so it shows the same on a page and in an
e-mailed report. Everything that is not a cell (labels, texts a model wrote) is escaped.
"""
from __future__ import annotations

import html
from collections import Counter
from typing import Any, Sequence

import plotly.graph_objects as go

from reasoning.fewshot import rank
from reasoning.grids import Grid, grid_of
from viz.tree import parent_of

# ARC's standard colours, 0-9 (the ARC testing interface's): black, blue, red, green, yellow, grey, magenta,
# orange, light blue, maroon.
PALETTE = ("#000000", "#0074D9", "#FF4136", "#2ECC40", "#FFDC00", "#AAAAAA", "#F012BE", "#FF851B", "#7FDBFF",
           "#870C25")
RIGHT, WRONG, MUTED = "#1a9850", "#d73027", "#777"
CELL = 16  # pixels per cell; grids wider than MAX_WIDTH are drawn with smaller cells
MAX_WIDTH = 360


def as_grid(value: Any) -> Grid | None:
    """A grid from what is stored: a grid answer text ("012\\n340\\n"), a JSON grid (list of rows) or a
    Grid; None for anything else (a number, a text answer, None)."""
    if value is None:
        return None
    if isinstance(value, str):
        return grid_of(value)
    try:
        rows = tuple(tuple(int(c) for c in row) for row in value)
    except (TypeError, ValueError):
        return None
    if not rows or not rows[0] or len({len(r) for r in rows}) != 1 or any(not 0 <= c <= 9 for r in rows for c in r):
        return None
    return rows


def grid_label(grid: Grid) -> str:
    """One line for a grid: its rows of digits joined by "/" ("031/319"), for legends and hovers."""
    return "/".join("".join(map(str, row)) for row in grid)


def answer_label(answer: str | None) -> str:
    """An answer on one line: a grid as its rows joined by "/", anything else as it is."""
    if answer is None:
        return "(no answer)"
    grid = as_grid(answer)
    return grid_label(grid) if grid is not None else answer


def grid_html(grid: Grid, cell: int = CELL, outline: str | None = None) -> str:
    """The grid as coloured cells: an inline CSS grid of one <span> per cell (row by row) on a grey
    background that shows as thin gridlines; `outline` (a colour) frames it (green right, red wrong).
    Plain HTML with inline styles: Streamlit's sanitizer removes SVG, and a report needs no stylesheet."""
    height, width = len(grid), len(grid[0])
    cell = max(4, min(cell, MAX_WIDTH // max(1, width)))
    label = html.escape(f"grid {height}x{width}: {grid_label(grid)}")
    frame = f"3px solid {outline}" if outline else "1px solid #888"
    cells = "".join(f'<span style="background:{PALETTE[c]}"></span>' for row in grid for c in row)
    return (f'<span class="tt-grid" role="img" aria-label="{label}" title="{label}" style="display:inline-grid;'
            f"grid-template-columns:repeat({width},{cell}px);grid-auto-rows:{cell}px;gap:1px;background:#555;"
            f'border:{frame};vertical-align:middle;line-height:0">{cells}</span>')


def value_html(value: Any, cell: int = CELL, outline: str | None = None, empty: str = "–") -> str:
    """A grid (answer text, JSON grid) drawn; any other value as escaped text; None as `empty`."""
    if value is None:
        return f'<span style="color:{MUTED}">{html.escape(empty)}</span>'
    grid = as_grid(value)
    if grid is not None:
        return grid_html(grid, cell, outline)
    return f"<code>{html.escape(str(value))}</code>"


def verdict_html(correct: bool | None) -> str:
    if correct is None:
        return ""
    return (f'<b style="color:{RIGHT}">✓ right</b>' if correct else f'<b style="color:{WRONG}">✗ wrong</b>')


def task_values(meta: dict) -> tuple[list, Any] | None:
    """A stored task's demonstrations and test input, as they are to be drawn (grids as JSON lists,
    texts as strings); None when the meta is not a well-formed task (an imported file may hold anything)."""
    demos, test_input = (meta or {}).get("demos"), (meta or {}).get("test_input")
    if (not isinstance(demos, list) or test_input is None
            or not all(isinstance(d, (list, tuple)) and len(d) == 2 for d in demos)):
        return None
    return [tuple(d) for d in demos], test_input


_TD = 'style="padding:4px 10px;vertical-align:middle;text-align:left;white-space:nowrap"'
_ARROW = '<td style="padding:0 6px;color:#888;font-size:1.2em">→</td>'


def task_html(demos: Sequence, test_input: Any, *, gold: Any = None, answer: Any = None,
              correct: bool | None = None, cell: int = CELL, answer_label: str = "answer") -> str:
    """A task with demonstrations: each demonstration's input → output, then the test input → the
    gold output and the answer (framed green or red). Values are grids (drawn) or texts (escaped)."""
    rows = []
    for i, (x, y) in enumerate(demos):
        rows.append(f"<tr><td {_TD}><span style='color:{MUTED}'>demo {i + 1}</span></td><td {_TD}>{value_html(x, cell)}"
                    f"</td>{_ARROW}<td {_TD}>{value_html(y, cell)}</td><td></td></tr>")
    outline = None if correct is None else (RIGHT if correct else WRONG)
    tail = ""
    if answer is not None or correct is not None:
        tail = (f"<td {_TD}><span style='color:{MUTED}'>{html.escape(answer_label)}</span><br>"
                f"{value_html(answer, cell, outline, empty='no answer')} {verdict_html(correct)}</td>")
    rows.append(f"<tr style='border-top:1px solid #ddd'><td {_TD}><b>test</b></td><td {_TD}>{value_html(test_input, cell)}</td>"
                f"{_ARROW}<td {_TD}><span style='color:{MUTED}'>gold</span><br>{value_html(gold, cell, empty='unknown')}</td>"
                f"{tail}</tr>")
    return f'<table class="tt-task" style="border-collapse:collapse;margin:4px 0">{"".join(rows)}</table>'


# --- test-time training: the augmented predictions and their vote -----------------------------------

def _number(value: Any, kind: type = int):
    return kind(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else kind(0)


def training_of(root_meta: dict | None) -> dict | None:
    """What a ttt tree's training did (the root's meta["ttt"]), with every field of the right type
    (an imported file may hold anything); None when there is none."""
    raw = (root_meta or {}).get("ttt")
    if not isinstance(raw, dict):
        return None
    losses = raw.get("losses") if isinstance(raw.get("losses"), list) else []
    return {"method": str(raw.get("method") or "–"), "examples": _number(raw.get("examples")),
            "steps": _number(raw.get("steps")), "tokens": _number(raw.get("tokens")),
            "trainable_params": _number(raw.get("trainable_params")), "seconds": _number(raw.get("seconds"), float),
            "losses": [float(x) for x in losses if isinstance(x, (int, float)) and not isinstance(x, bool)]}


def attempts_of(result_meta: dict | None) -> list[str]:
    """ARC's two attempts of a ttt result (its meta["attempts"]): the answers, as stored."""
    attempts = (result_meta or {}).get("attempts")
    return [a for a in attempts if isinstance(a, str)] if isinstance(attempts, list) else []


def predictions(nodes: Sequence[Any]) -> list[dict]:
    """The augmented predictions of a ttt tree (the root's children that carry an augmentation), in
    the order they were made: seq, augmentation name, what the model wrote (raw answer, on the
    augmented task), the answer mapped back, right?, the votes its answer got, chosen?"""
    preds = [n for n in nodes if parent_of(n) is not None and "augmentation_name" in (n.meta or {})]
    votes = Counter(n.answer for n in preds if n.answer is not None)
    return [{"seq": n.seq, "augmentation": str(n.meta["augmentation_name"]), "raw": n.meta.get("raw_answer"),
             "answer": n.answer, "correct": n.correct, "votes": votes.get(n.answer, 0) if n.answer is not None else 0,
             "chosen": n.status == "selected"} for n in preds]


def vote_table(rows: Sequence[dict]) -> list[dict]:
    """One row per distinct mapped-back answer (of `predictions`): votes, right?, the augmentations
    that gave it; most votes first, ties to the earlier prediction (the ttt strategy's vote,
    reasoning.fewshot.rank)."""
    table: dict[str, dict] = {}
    for r in rows:
        if r["answer"] is None:
            continue
        row = table.setdefault(r["answer"], {"answer": r["answer"], "votes": 0, "correct": r["correct"],
                                             "augmentations": [], "chosen": False})
        row["votes"] += 1
        row["augmentations"].append(r["augmentation"])
        row["chosen"] = row["chosen"] or r["chosen"]
    return [table[a] for a in rank([r["answer"] for r in rows])]


def predictions_html(rows: Sequence[dict], attempts: Sequence[str] = (), cell: int = 12) -> str:
    """The predictions as a table: augmentation, what the model wrote (on the augmented task), the
    answer mapped back (framed green/red), votes for that answer, and ARC's attempts marked."""
    head = ("<tr>" + "".join(f"<th {_TD}>{h}</th>" for h in ("#", "augmentation", "model wrote (augmented)",
                                                               "mapped back", "", "votes", "")) + "</tr>")
    body = []
    for i, r in enumerate(rows):
        outline = None if r["correct"] is None else (RIGHT if r["correct"] else WRONG)
        attempt = (f"attempt {list(attempts).index(r['answer']) + 1}" if r["answer"] in attempts else "")
        mark = "◆ chosen" if r["chosen"] else attempt
        body.append(f"<tr><td {_TD}>{i + 1}</td><td {_TD}>{html.escape(r['augmentation'])}</td>"
                    f"<td {_TD}>{value_html(r['raw'], cell, empty='none')}</td>"
                    f"<td {_TD}>{value_html(r['answer'], cell, outline, empty='no answer')}</td>"
                    f"<td {_TD}>{verdict_html(r['correct'])}</td><td {_TD}>{r['votes']}</td>"
                    f"<td {_TD}>{html.escape(mark)}</td></tr>")
    return f'<table class="tt-predictions" style="border-collapse:collapse">{head}{"".join(body)}</table>'


def vote_figure(table: Sequence[dict], title: str = "Vote over the augmented predictions") -> go.Figure:
    """Votes per mapped-back answer (of `vote_table`), right answers green, wrong red; the answers
    named on one line (a grid's rows joined by "/")."""
    labels = [answer_label(r["answer"]) for r in table]
    colours = [MUTED if r["correct"] is None else (RIGHT if r["correct"] else WRONG) for r in table]
    hover = [html.escape(f"{label}: {r['votes']} votes from {', '.join(r['augmentations'])}")
             for label, r in zip(labels, table)]
    fig = go.Figure(go.Bar(x=[r["votes"] for r in table], y=labels, orientation="h", marker_color=colours,
                           hovertext=hover, hoverinfo="text"))
    fig.update_layout(height=max(180, 60 + 28 * len(table)), margin=dict(t=40, b=40, l=10, r=10), title=title,
                      xaxis_title="votes (green = right, red = wrong)", yaxis=dict(type="category", autorange="reversed"),
                      xaxis=dict(dtick=1))
    return fig


def loss_figure(losses: Sequence[float], title: str = "Test-time training: loss per step") -> go.Figure:
    """The training loss at each step (the ttt root's meta["ttt"]["losses"])."""
    steps = list(range(1, len(losses) + 1))
    fig = go.Figure(go.Scatter(x=steps, y=list(losses), mode="lines+markers", name="loss",
                               line=dict(color="#3366cc")))
    fig.update_layout(height=260, margin=dict(t=40, b=40, l=10, r=10), title=title, xaxis_title="step",
                      yaxis_title="loss (outputs only)", showlegend=False)
    if steps:
        fig.update_xaxes(range=[0.5, max(steps) + 0.5])
    return fig
