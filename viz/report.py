"""The budget curve drawn in static reports: accuracy against samples per problem, one line per
estimator with its bootstrap band. Pure: CurvePoints in, plotly Figure out."""
from __future__ import annotations

from typing import Sequence

import plotly.graph_objects as go

from reasoning.estimators import CurvePoint

ESTIMATOR_LABELS = {"pass": "pass@k (some sample right: the ceiling)", "maj": "majority vote@k",
                    "bon": "best-of-k (verifier)", "wbon": "weighted best-of-k (verifier)"}
COLOURS = {"pass": "#9e9e9e", "maj": "#1f77b4", "bon": "#ff7f0e", "wbon": "#2ca02c"}


def budget_figure(points: Sequence[CurvePoint], title: str = "") -> go.Figure:
    """Accuracy vs k with 95% bootstrap bands (over problems); x on a log2 scale like the papers."""
    fig = go.Figure()
    for name in ESTIMATOR_LABELS:
        rows = sorted((p for p in points if p.estimator == name), key=lambda p: p.k)
        if not rows:
            continue
        ks = [p.k for p in rows]
        colour = COLOURS[name]
        fig.add_trace(go.Scatter(x=ks + ks[::-1], y=[p.ci_high for p in rows] + [p.ci_low for p in rows][::-1],
                                 fill="toself", fillcolor=colour, opacity=0.15, line=dict(width=0),
                                 hoverinfo="skip", showlegend=False, legendgroup=name))
        fig.add_trace(go.Scatter(
            x=ks, y=[p.accuracy for p in rows], mode="lines+markers", name=ESTIMATOR_LABELS[name],
            legendgroup=name, line=dict(color=colour, width=2, dash="dot" if name == "pass" else "solid"),
            customdata=[[p.ci_low, p.ci_high, p.tokens_per_problem, p.n_problems] for p in rows],
            hovertemplate=("k=%{x}: %{y:.1%} (95% CI %{customdata[0]:.1%}–%{customdata[1]:.1%}), "
                           "%{customdata[2]:.0f} tokens/problem, %{customdata[3]} problems<extra></extra>"),
        ))
    fig.update_layout(
        template="plotly_white", height=380, title=dict(text=title, x=0.01) if title else None,
        margin=dict(l=10, r=10, t=40 if title else 10, b=10),
        xaxis=dict(title="samples per problem (k)", type="log", tickmode="array",
                   tickvals=sorted({p.k for p in points})),
        yaxis=dict(title="accuracy", tickformat=".0%", rangemode="tozero"),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="left", x=0.0),
    )
    return fig
