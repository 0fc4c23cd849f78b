"""How good is the verifier? Score distributions, ROC AUC, calibration and score trajectories.

Inputs are plain arrays: a score in [0, 1] per final path and whether that path's answer is right.
ROC AUC comes from the engine (reasoning.estimators.roc_auc), like every number a figure shows.
"""
from __future__ import annotations

import html
from typing import Iterable, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from reasoning.estimators import roc_auc, scored_outcomes

RIGHT, WRONG = "#1a9850", "#d73027"
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
MAX_TRAJECTORIES = 400  # lines drawn per outcome; more is ink, not information


def roc_curve(scores, labels) -> tuple[np.ndarray, np.ndarray]:
    """False and true positive rates at every distinct threshold, from (0, 0) to (1, 1)."""
    s, y = scored_outcomes(scores, labels)
    if len(s) == 0 or y.all() or (~y).all():
        return np.array([0.0, 1.0]), np.array([0.0, 1.0])
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last_of_tie = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[last_of_tie]
    fps = np.cumsum(~y)[last_of_tie]
    return np.r_[0.0, fps / fps[-1]], np.r_[0.0, tps / tps[-1]]


def calibration(scores, labels, bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean score, fraction right and count per equal-width score bin (empty bins dropped)."""
    s, y = scored_outcomes(scores, labels)
    idx = np.clip((s * bins).astype(int), 0, bins - 1)
    counts = np.bincount(idx, minlength=bins)
    mean_score = np.bincount(idx, weights=s, minlength=bins)
    right = np.bincount(idx, weights=y.astype(float), minlength=bins)
    has = counts > 0
    return mean_score[has] / counts[has], right[has] / counts[has], counts[has]


Group = tuple[str, Sequence[float | None], Sequence[bool | None]]  # (run label, scores, labels)


def _base(fig: go.Figure, height: int, title: str | None = None) -> go.Figure:
    fig.update_layout(template="plotly_white", height=height, margin=dict(l=10, r=10, t=40 if title else 10, b=10),
                      title=dict(text=title, x=0.01, font=dict(size=14)) if title else None,
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, xanchor="right", x=1.0))
    return fig


def score_histogram(groups: Sequence[Group]) -> go.Figure:
    """Path-score distributions of right vs wrong answers, one row per run."""
    rows = max(1, len(groups))
    fig = make_subplots(rows=rows, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=[html.escape(g[0]) for g in groups] if rows > 1 else None)
    for r, (label, scores, labels) in enumerate(groups, start=1):
        s, y = scored_outcomes(scores, labels)
        for name, colour, mask in (("right", RIGHT, y), ("wrong", WRONG, ~y)):
            fig.add_trace(go.Histogram(x=s[mask], name=f"{name} answers", marker_color=colour, opacity=0.6,
                                       xbins=dict(start=0, end=1.0001, size=0.05), legendgroup=name,
                                       showlegend=r == 1, hovertemplate="score %{x}<br>%{y} paths<extra></extra>"),
                          row=r, col=1)
        fig.update_yaxes(title_text="paths", row=r, col=1)
    fig.update_xaxes(range=[0, 1], title_text="verifier path score", row=rows, col=1)
    fig.update_layout(barmode="overlay")
    return _base(fig, 160 + 170 * rows)


def roc_figure(groups: Sequence[Group]) -> go.Figure:
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"),
                             name="chance (AUC 0.5)", hoverinfo="skip"))
    for i, (label, scores, labels) in enumerate(groups):
        auc = roc_auc(scores, labels)
        if auc is None:  # one class only: no curve to draw
            continue
        fpr, tpr = roc_curve(scores, labels)
        fig.add_trace(go.Scatter(x=fpr, y=tpr, mode="lines", line=dict(color=PALETTE[i % len(PALETTE)], width=2.5,
                                                                       shape="hv"),
                                 name=f"{html.escape(label)} (AUC {'n/a' if auc is None else f'{auc:.2f}'})"))
    fig.update_xaxes(range=[0, 1], title_text="false positive rate (wrong paths accepted)")
    fig.update_yaxes(range=[0, 1.02], title_text="true positive rate (right paths accepted)")
    return _base(fig, 420)


def calibration_figure(groups: Sequence[Group], bins: int = 10) -> go.Figure:
    """Fraction of right answers per score bin: on the diagonal means the score is a probability."""
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(dash="dot", color="#999"),
                             name="perfectly calibrated", hoverinfo="skip"))
    for i, (label, scores, labels) in enumerate(groups):
        mean, frac, counts = calibration(scores, labels, bins)
        size = 6 + 14 * np.sqrt(counts / counts.max()) if len(counts) else []
        fig.add_trace(go.Scatter(x=mean, y=frac, mode="lines+markers", name=html.escape(label),
                                 line=dict(color=PALETTE[i % len(PALETTE)]), marker=dict(size=size),
                                 customdata=counts,
                                 hovertemplate="mean score %{x:.2f}<br>right %{y:.0%}<br>%{customdata} paths<extra></extra>"))
    fig.update_xaxes(range=[0, 1], title_text="verifier path score (bin mean)")
    fig.update_yaxes(range=[0, 1.02], title_text="fraction right", tickformat=".0%")
    return _base(fig, 420)


def step_score_paths(steps: Iterable[tuple[str, int, int, int | None, float | None]],
                     leaves: Iterable[tuple[str, int, int, bool | None]]) -> list[tuple[list[float | None], bool | None]]:
    """What `trajectory_figure` draws: the step scores along each final path, root excluded, from the
    nodes' (run_id, problem_id, seq, parent_seq, score) (`store.analysis.scored_steps`) and each path's
    (run_id, problem_id, leaf seq, correct). A walk up stops at a node it has seen, so parents that
    loop (stored before imports refused them) cannot hang the page."""
    parent = {(r, p, s): (ps, sc) for r, p, s, ps, sc in steps}
    out = []
    for run_id, problem_id, seq, correct in leaves:
        scores, key, seen = [], (run_id, problem_id, seq), set()
        while key in parent and key not in seen:
            seen.add(key)
            parent_seq, score = parent[key]
            if parent_seq is None:
                break  # the root holds the question, not a step
            scores.append(score)
            key = (run_id, problem_id, parent_seq)
        out.append((scores[::-1], correct))
    return out


def trajectory_figure(paths: Sequence[tuple[Sequence[float | None], bool | None]]) -> go.Figure:
    """Step score along each final path (faint), and the mean per step of right vs wrong paths (bold):
    a useful verifier separates them early, not only at the last step."""
    fig = go.Figure()
    for name, colour, want in (("right", RIGHT, True), ("wrong", WRONG, False)):
        chosen = [p for p, ok in paths if ok is want]
        xs, ys = [], []
        for scores in chosen[:MAX_TRAJECTORIES]:
            xs.extend(list(range(1, len(scores) + 1)) + [None])
            ys.extend([np.nan if v is None else v for v in scores] + [None])
        if xs:
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=dict(color=colour, width=1), opacity=0.18,
                                     hoverinfo="skip", showlegend=False, legendgroup=name))
        depth = max((len(p) for p in chosen), default=0)
        if depth:
            grid = np.full((len(chosen), depth), np.nan)
            for r, scores in enumerate(chosen):
                grid[r, : len(scores)] = [np.nan if v is None else v for v in scores]
            counts = np.isfinite(grid).sum(axis=0)
            with np.errstate(invalid="ignore"):
                mean = np.nansum(grid, axis=0) / np.where(counts, counts, 1)
            mean[counts == 0] = np.nan
            fig.add_trace(go.Scatter(x=np.arange(1, depth + 1), y=mean, mode="lines+markers", legendgroup=name,
                                     line=dict(color=colour, width=3), name=f"mean, {name} answers ({len(chosen)})",
                                     customdata=counts,
                                     hovertemplate="step %{x}<br>mean score %{y:.2f}<br>%{customdata} paths<extra></extra>"))
    fig.update_xaxes(title_text="step", dtick=1)
    fig.update_yaxes(range=[0, 1.02], title_text="step score")
    return _base(fig, 420)
