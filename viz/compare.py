"""Several runs on the same problems: who solved what, and at what cost."""
from __future__ import annotations

import html
from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from viz.scores import PALETTE

# z values of the outcome matrix; a discrete colour scale maps them to wrong / no gold / right.
WRONG_Z, UNKNOWN_Z, RIGHT_Z = 0.0, 0.5, 1.0
OUTCOME_SCALE = [[0.0, "#d73027"], [0.33, "#d73027"], [0.33, "#c9ccd1"], [0.67, "#c9ccd1"],
                 [0.67, "#1a9850"], [1.0, "#1a9850"]]


def outcome_value(correct: bool | None) -> float:
    return UNKNOWN_Z if correct is None else RIGHT_Z if correct else WRONG_Z


def outcome_matrix_figure(run_labels: Sequence[str], problem_labels: Sequence[str],
                          z: np.ndarray, hover: np.ndarray | None = None) -> go.Figure:
    """Rows are runs, columns problems; green right, red wrong, grey no gold, blank not run.
    `z` is (runs x problems) of RIGHT_Z / WRONG_Z / UNKNOWN_Z / NaN."""
    fig = go.Figure(go.Heatmap(
        z=z, x=[f"#{p}" for p in problem_labels], y=[html.escape(r) for r in run_labels],
        zmin=0, zmax=1, colorscale=OUTCOME_SCALE, showscale=False, xgap=1 if len(problem_labels) <= 200 else 0,
        ygap=2, hovertext=hover, hoverinfo="text" if hover is not None else "z",
    ))
    fig.update_layout(template="plotly_white", height=110 + 42 * len(run_labels),
                      margin=dict(l=10, r=10, t=10, b=10),
                      xaxis=dict(title="problem (run order)", showgrid=False, zeroline=False, type="category",
                                 showticklabels=len(problem_labels) <= 60),
                      yaxis=dict(autorange="reversed", showgrid=False))
    return fig


def cost_accuracy_figure(labels: Sequence[str], tokens_per_problem: Sequence[float],
                         accuracy: Sequence[float | None]) -> go.Figure:
    """Each run a point: generated tokens per problem against accuracy (up and left is better)."""
    fig = go.Figure()
    for i, (label, tok, acc) in enumerate(zip(labels, tokens_per_problem, accuracy)):
        if acc is None:
            continue
        fig.add_trace(go.Scatter(x=[tok], y=[acc], mode="markers", marker=dict(size=14, color=PALETTE[i % len(PALETTE)]),
                                 name=html.escape(label),
                                 hovertemplate="%{x:.0f} tokens / problem<br>accuracy %{y:.0%}<extra>%{fullData.name}</extra>"))
    fig.update_layout(template="plotly_white", height=340, margin=dict(l=10, r=10, t=10, b=10),
                      legend=dict(orientation="h", yanchor="top", y=-0.2, xanchor="left", x=0),
                      xaxis=dict(title="generated tokens per problem", rangemode="tozero"),
                      yaxis=dict(title="accuracy", range=[-0.05, 1.1], tickformat=".0%"))
    return fig
