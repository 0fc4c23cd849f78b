"""The search tree as a plotly figure: layered top-down, colour = verifier score, marker = status.

Nodes are store rows (`store.models.Node`) or anything with the same attributes (`seq`, `parent_seq`
or `parent`, `depth`, `text`, `tokens`, `logprob`, `score`, `path_score`, `status`, `answer`,
`correct`). Layout is O(n) so a 5,000-node MCTS tree builds in well under a second: leaves take
consecutive x slots in depth-first order and a parent sits over the middle of its children (a tidy
tree without the overlap pass: subtrees never overlap because each owns a contiguous leaf range).
Positions come from the whole tree, so the replay slider grows the picture without moving nodes.
"""
from __future__ import annotations

import html
import math
import textwrap
from collections import Counter
from typing import Any, Iterable, Sequence

import numpy as np
import plotly.graph_objects as go

# Display categories, in legend order: (key, legend label, symbol, size bonus, opacity).
CATEGORIES: tuple[tuple[str, str, str, int, float], ...] = (
    ("kept", "kept", "circle", 0, 1.0),
    ("pruned", "pruned", "x", -1, 0.55),
    ("selected", "chosen path", "diamond", 4, 1.0),
    ("right", "answer right", "star", 6, 1.0),
    ("wrong", "answer wrong", "triangle-down", 4, 1.0),
    ("terminal", "answer (no gold)", "square", 2, 1.0),
)
COLOR_BY = {"score": "step score", "path_score": "path score", "logprob": "logprob / token",
            "entropy": "certainty (1 - entropy)", "confidence": "token confidence"}
# Signals read from node.meta (stored by the backend's top-k logprobs), mapped to [0, 1] as the
# confidence verifiers map them (reasoning/verifiers/confidence.py).
_META_SIGNALS = ("entropy", "confidence")
COLORSCALE = "Viridis"
UNSCORED = "#c9ccd1"
RIGHT, WRONG, CHOSEN_EDGE, FOCUS = "#1a9850", "#d73027", "#3b3b3b", "#ff6f00"
HOVER_CHARS = 420
LABELS = {key: label for key, label, *_ in CATEGORIES}


TURN = "#e67e22"  # the outline of a thought that turns ("Wait", "But", ...)


def parent_of(node: Any) -> int | None:
    """Store rows call it `parent_seq`, in-memory `reasoning.types.Node`s call it `parent`."""
    parent = getattr(node, "parent_seq", None)
    return getattr(node, "parent", None) if parent is None else parent


def path_of(nodes: Sequence[Any], seq: int) -> list[Any]:
    """The nodes from the root down to `seq` (inclusive); empty when `seq` is not in the tree."""
    by_seq = {n.seq: n for n in nodes}
    path, node, seen = [], by_seq.get(seq), set()
    while node is not None and node.seq not in seen:
        seen.add(node.seq)
        path.append(node)
        parent = parent_of(node)
        node = by_seq.get(parent) if parent is not None else None
    return path[::-1]


def is_chain(nodes: Sequence[Any]) -> bool:
    """True when the tree is a fan of independent paths (cot, self-consistency, best-of-N): every
    node but the root has at most one child."""
    counts = Counter(parent_of(n) for n in nodes if parent_of(n) is not None)
    roots = {n.seq for n in nodes if parent_of(n) is None}
    return all(c <= 1 for p, c in counts.items() if p not in roots)


def category_of(node: Any) -> str:
    status = getattr(node, "status", "kept")
    if status == "pruned":
        return "pruned"
    if status == "selected":
        return "selected"
    if status == "terminal":
        correct = getattr(node, "correct", None)
        return "terminal" if correct is None else ("right" if correct else "wrong")
    return "kept"


def answer_table(nodes: Sequence[Any]) -> list[dict]:
    """The final answers of a fan of chains: one row per distinct answer with its votes, summed
    and mean path score and whether it is right; most votes first. (The vote table beside a fan.)"""
    rows: dict[str, dict] = {}
    for n in nodes:
        if getattr(n, "status", None) not in ("terminal", "selected") or _has_children(n, nodes):
            continue
        if parent_of(n) is None:
            continue
        key = n.answer if n.answer is not None else "(no answer)"
        row = rows.setdefault(key, {"answer": key, "votes": 0, "score_sum": 0.0, "scored": 0,
                                    "correct": n.correct, "chosen": False})
        row["votes"] += 1
        if n.path_score is not None:
            row["score_sum"] += n.path_score
            row["scored"] += 1
        row["chosen"] = row["chosen"] or n.status == "selected"
    out = []
    for row in rows.values():
        scored = row.pop("scored")
        row["mean_score"] = row["score_sum"] / scored if scored else None
        if not scored:
            row["score_sum"] = None
        out.append(row)
    return sorted(out, key=lambda r: (-r["votes"], -(r["score_sum"] or 0.0), r["answer"]))


def _has_children(node: Any, nodes: Sequence[Any]) -> bool:
    # Only used on small fans (answer_table); the layout uses the O(n) child lists below.
    return any(parent_of(m) == node.seq for m in nodes)


def layout_xy(nodes: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """x, y per node (same order as `nodes`): y is the depth, leaves get consecutive x slots in
    depth-first order, a parent sits midway between its first and last child."""
    n = len(nodes)
    index = {node.seq: i for i, node in enumerate(nodes)}
    children: list[list[int]] = [[] for _ in range(n)]
    roots = []
    for i, node in enumerate(nodes):
        parent = parent_of(node)
        if parent is None or parent not in index or index[parent] == i:
            roots.append(i)
        else:
            children[index[parent]].append(i)
    x = np.zeros(n)
    y = np.array([float(getattr(node, "depth", 0) or 0) for node in nodes])
    next_leaf = 0.0
    # Iterative post-order (deep chains would overflow Python's recursion limit).
    for root in roots:
        stack = [(root, False)]
        while stack:
            i, done = stack.pop()
            kids = children[i]
            if not kids:
                x[i] = next_leaf
                next_leaf += 1.0
            elif done:
                x[i] = (x[kids[0]] + x[kids[-1]]) / 2.0
            else:
                stack.append((i, True))
                stack.extend((k, False) for k in reversed(kids))
    return x, y


def _fmt(value: float | None, digits: int = 2) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def hover_text(node: Any) -> str:
    """Hover for one node. Step text is model output: escaped, because plotly renders hover as HTML."""
    label = LABELS[category_of(node)]
    meta = getattr(node, "meta", None) or {}
    kind = {"think": "thought", "answer": "answer step"}.get(meta.get("phase"), "step")
    head = f"<b>#{node.seq}</b> · {'question' if parent_of(node) is None else f'{kind} {node.depth}'} · {label}"
    if meta.get("turn"):
        head += f" · turn: <b>{html.escape(str(meta['turn']))}</b>"
    stats = (f"score {_fmt(node.score)} · path {_fmt(node.path_score)} · "
             f"{getattr(node, 'tokens', 0) or 0} tok · logprob {_fmt(getattr(node, 'logprob', None))}")
    lines = [head, stats]
    if getattr(node, "answer", None) is not None:
        mark = {True: " ✓", False: " ✗"}.get(getattr(node, "correct", None), "")
        lines.append(f"answer: <b>{html.escape(str(node.answer)[:40])}</b>{mark}")
    text = " ".join((node.text or "").split())
    if len(text) > HOVER_CHARS:
        text = text[: HOVER_CHARS - 1] + "…"
    wrapped = [html.escape(line) for line in textwrap.wrap(text, 64)] or ["<i>(empty step)</i>"]
    return "<br>".join(lines + [""] + wrapped)


def _colour_values(nodes: Sequence[Any], color_by: str) -> np.ndarray:
    if color_by not in COLOR_BY:
        raise ValueError(f"color_by must be one of {', '.join(COLOR_BY)} (got {color_by!r})")
    if color_by == "logprob":
        vals = [n.logprob / n.tokens if n.logprob is not None and n.tokens else None for n in nodes]
    elif color_by in _META_SIGNALS:
        from reasoning.verifiers.confidence import node_signals

        vals = [node_signals(getattr(n, "meta", None) or {}).get(color_by) for n in nodes]
    else:
        vals = [getattr(n, color_by) for n in nodes]
    return np.array([np.nan if v is None else float(v) for v in vals], dtype=float)


def _edges(x: np.ndarray, y: np.ndarray, child_idx: np.ndarray, parent_idx: np.ndarray):
    """One polyline with NaN gaps: plotly draws it as a single SVG path (fast at 5,000 edges)."""
    if len(child_idx) == 0:
        return np.array([]), np.array([])
    gap = np.full(len(child_idx), np.nan)
    ex = np.column_stack([x[parent_idx], x[child_idx], gap]).ravel()
    ey = np.column_stack([y[parent_idx], y[child_idx], gap]).ravel()
    return ex, ey


def tree_figure(nodes: Sequence[Any], *, color_by: str = "score", selected_seq: int | None = None,
                upto_seq: int | None = None, gold: str | None = None, title: str | None = None,
                height: int | None = None) -> go.Figure:
    """The interactive tree. Every point carries its node's `seq` in customdata (click selection);
    `selected_seq` rings a node and highlights its path; `upto_seq` shows only nodes created up to
    that seq (the replay slider)."""
    nodes = sorted(nodes, key=lambda n: n.seq)
    fig = go.Figure()
    if not nodes:
        fig.add_annotation(text="No nodes yet", showarrow=False, font=dict(size=16, color="#888"))
        fig.update_layout(xaxis=dict(visible=False), yaxis=dict(visible=False), height=height or 320,
                          template="plotly_white")
        return fig
    x, y = layout_xy(nodes)
    seqs = np.array([n.seq for n in nodes])
    visible = np.ones(len(nodes), bool) if upto_seq is None else seqs <= upto_seq
    index = {n.seq: i for i, n in enumerate(nodes)}
    parents = np.array([index.get(parent_of(n), -1) if parent_of(n) is not None else -1 for n in nodes])
    has_edge = (parents >= 0) & visible
    has_edge[has_edge] &= visible[parents[has_edge]]
    child_idx = np.flatnonzero(has_edge)
    statuses = np.array([getattr(n, "status", "kept") for n in nodes])

    ex, ey = _edges(x, y, child_idx, parents[child_idx])
    fig.add_trace(go.Scatter(x=ex, y=ey, mode="lines", line=dict(color="#b4b8bf", width=1),
                             hoverinfo="skip", showlegend=False, name="edges"))
    chosen = child_idx[(statuses[child_idx] == "selected") & (statuses[parents[child_idx]] == "selected")]
    if len(chosen):
        cx, cy = _edges(x, y, chosen, parents[chosen])
        fig.add_trace(go.Scatter(x=cx, y=cy, mode="lines", line=dict(color=CHOSEN_EDGE, width=2.5),
                                 hoverinfo="skip", showlegend=False, name="chosen path"))
    focus_path = [index[n.seq] for n in path_of(nodes, selected_seq)] if selected_seq is not None else []
    focus_path = [i for i in focus_path if visible[i]]
    if len(focus_path) > 1:
        fp = np.array(focus_path)
        fx, fy = _edges(x, y, fp[1:], fp[:-1])
        fig.add_trace(go.Scatter(x=fx, y=fy, mode="lines", line=dict(color=FOCUS, width=3.5),
                                 hoverinfo="skip", showlegend=False, name="clicked path"))

    values = _colour_values(nodes, color_by)
    scored_any = bool(np.isfinite(values[visible]).any())
    cats = np.array([category_of(n) for n in nodes])
    hovers = np.array([hover_text(n) if visible[i] else "" for i, n in enumerate(nodes)], dtype=object)
    n_visible = int(visible.sum())
    base = 15 if n_visible <= 60 else 11 if n_visible <= 400 else 7
    leaves_visible = {int(i) for i in np.flatnonzero(visible) if cats[i] in ("right", "wrong", "terminal", "selected")
                      and getattr(nodes[i], "answer", None) is not None}
    label_answers = len(leaves_visible) <= 24
    for key, label, symbol, bonus, opacity in CATEGORIES:
        members = np.flatnonzero(visible & (cats == key))
        if len(members) == 0:
            continue
        finite = np.isfinite(values[members])
        for part, scored in ((members[finite], True), (members[~finite], False)):
            if len(part) == 0:
                continue
            line_colour: Any = "white"
            if key in ("right", "selected", "wrong"):
                line_colour = [RIGHT if nodes[i].correct else WRONG if nodes[i].correct is False else CHOSEN_EDGE
                               for i in part]
            marker = dict(symbol=symbol, size=base + round(bonus * base / 15), opacity=opacity,
                          line=dict(width=2 if key in ("right", "wrong", "selected") else 1, color=line_colour))
            if scored:
                marker.update(color=values[part], coloraxis="coloraxis")
            else:
                marker.update(color=UNSCORED)
            text = None
            if label_answers:
                text = [html.escape(str(nodes[i].answer)[:14]) if i in leaves_visible else "" for i in part]
            fig.add_trace(go.Scatter(
                x=x[part], y=y[part], mode="markers+text" if text else "markers", marker=marker,
                text=text, textposition="bottom center", textfont=dict(size=11, color="#444"),
                customdata=seqs[part], hovertext=hovers[part], hoverinfo="text",
                name=label, legendgroup=key, showlegend=bool(scored or not finite.any()),
            ))
    turns = [i for i in np.flatnonzero(visible) if (getattr(nodes[i], "meta", None) or {}).get("turn")]
    if turns:  # a thinking trace's turns ("Wait", "But", ...): where the model checks, doubts or repairs
        fig.add_trace(go.Scatter(x=x[turns], y=y[turns], mode="markers", hoverinfo="skip", name="turn in thinking",
                                 marker=dict(symbol="diamond-open", size=base + 8, color=TURN, line=dict(width=2))))
    if focus_path:
        i = focus_path[-1]
        fig.add_trace(go.Scatter(x=[x[i]], y=[y[i]], mode="markers", hoverinfo="skip", showlegend=False,
                                 name="clicked", marker=dict(symbol="circle-open", size=base + 14,
                                                             color=FOCUS, line=dict(width=3))))

    max_depth = int(y.max())
    heading = html.escape(title) if title else ""
    if gold is not None:
        heading = f"{heading}{' · ' if heading else ''}gold answer <b>{html.escape(str(gold))}</b>"
    xpad = 0.6 if len(x) > 1 else 1.0
    fig.update_layout(
        template="plotly_white",
        title=dict(text=heading, x=0.01, font=dict(size=14)) if heading else None,
        height=height or int(min(900, max(380, 130 + 70 * (max_depth + 1)))),
        margin=dict(l=10, r=10, t=40 if heading else 10, b=40),
        xaxis=dict(visible=False, range=[x.min() - xpad, x.max() + xpad]),
        yaxis=dict(autorange="reversed", zeroline=False, showgrid=True, gridcolor="#eef0f3",
                   tickmode="array" if max_depth < 40 else "auto",
                   tickvals=list(range(max_depth + 1)) if max_depth < 40 else None,
                   ticktext=["question"] + [f"step {d}" for d in range(1, max_depth + 1)] if max_depth < 40 else None,
                   fixedrange=False),
        legend=dict(orientation="h", yanchor="top", y=-0.01, xanchor="left", x=0.0, itemclick=False,
                    itemdoubleclick=False),  # below the tree: the mode bar lives top right
        hoverlabel=dict(bgcolor="white", font=dict(size=12), align="left"),
        dragmode="pan",
        clickmode="event+select",
        uirevision="tree",
        coloraxis=dict(colorscale=COLORSCALE, cmin=0.0 if color_by != "logprob" else None,
                       cmax=1.0 if color_by != "logprob" else None, showscale=scored_any,
                       colorbar=dict(title=dict(text=COLOR_BY[color_by], side="right"), thickness=12, len=0.8)),
    )
    return fig


def replay_steps(nodes: Iterable[Any]) -> list[int]:
    """The seqs a replay slider steps through (creation order)."""
    return sorted(n.seq for n in nodes)
