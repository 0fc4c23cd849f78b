"""What test-time training buys, as figures: accuracy against TTT steps and against the number of
augmented predictions voted over, each point with its 95% bootstrap interval over problems. The
points are thinktrace.ttt.TTTPoint (read by attribute: curve, x, accuracy, ci_low, ci_high, n_problems)."""
from __future__ import annotations

import html
from typing import Any, Sequence

import plotly.graph_objects as go

COLOURS = ("#3366cc", "#dc3912", "#109618", "#ff9900", "#990099", "#0099c6", "#dd4477", "#66aa00")


def ttt_figure(points: Sequence[Any], x_title: str, title: str, height: int = 380) -> go.Figure:
    """One line per curve, markers with 95% error bars; accuracy in percent."""
    fig = go.Figure()
    curves = list(dict.fromkeys(p.curve for p in points))
    for i, curve in enumerate(curves):
        mine = sorted((p for p in points if p.curve == curve), key=lambda p: p.x)
        colour = COLOURS[i % len(COLOURS)]
        fig.add_trace(go.Scatter(
            x=[p.x for p in mine], y=[100 * p.accuracy for p in mine], mode="lines+markers", name=html.escape(curve),
            line=dict(color=colour), marker=dict(size=8),
            error_y=dict(type="data", symmetric=False, array=[100 * (p.ci_high - p.accuracy) for p in mine],
                         arrayminus=[100 * (p.accuracy - p.ci_low) for p in mine], thickness=1.2, width=4),
            hovertext=[html.escape(f"{curve}: {x_title} {p.x}: {100 * p.accuracy:.1f}% "
                                   f"[{100 * p.ci_low:.1f}, {100 * p.ci_high:.1f}] on {p.n_problems} problems")
                       for p in mine], hoverinfo="text"))
    xs = sorted({p.x for p in points})
    fig.update_layout(height=height, margin=dict(t=50, b=40, l=10, r=10), title=html.escape(title),
                      xaxis_title=x_title, yaxis_title="accuracy (%)", yaxis=dict(range=[0, 100]),
                      legend=dict(orientation="h", y=-0.22))
    if xs and len(xs) <= 12:
        fig.update_xaxes(tickvals=xs)
    return fig
