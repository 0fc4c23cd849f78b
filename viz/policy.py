"""A compute-optimal policy against fixed strategies (Snell et al. 2024, Fig. 4's comparison): accuracy
against mean tokens per question, on problems the policy was not fitted on.

Each fixed arm (a strategy at one budget, the same for every question) is a point with its 95% CI; the
policy is a line with its band; the oracle-difficulty policy, when given, is a dashed line labelled as
an upper bound; weighted best-of-N's best point is ringed, the reference of "the same accuracy with
fewer tokens".
"""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative

from reasoning.policy import Point

POLICY_COLOR = "rgb(20, 20, 20)"
ORACLE_COLOR = "rgb(150, 150, 150)"


def _family(label: str) -> str:
    """"best_of_n weighted n=8" -> "best_of_n weighted": one colour per strategy."""
    return " ".join(word for word in label.split() if "=" not in word)


def policy_figure(curve: Sequence[Point], fixed: Sequence[Point], *, oracle: Sequence[Point] = (),
                  reference: Point | None = None, title: str = "", caption: str = "") -> go.Figure:
    fig = go.Figure()
    families: dict[str, list[Point]] = defaultdict(list)
    for p in fixed:
        families[_family(p.label)].append(p)
    for i, (family, points) in enumerate(families.items()):
        points = sorted(points, key=lambda p: p.tokens)
        color = qualitative.Plotly[i % len(qualitative.Plotly)]
        fig.add_trace(go.Scatter(
            x=[p.tokens for p in points], y=[p.accuracy for p in points], mode="markers+lines", name=family,
            line={"color": color, "width": 1, "dash": "dot"}, marker={"color": color, "size": 7},
            error_y={"type": "data", "symmetric": False, "array": [p.ci_high - p.accuracy for p in points],
                     "arrayminus": [p.accuracy - p.ci_low for p in points], "thickness": 1, "color": color},
            hovertemplate=[f"{p.label}<br>{100 * p.accuracy:.1f}% [{100 * p.ci_low:.1f}, {100 * p.ci_high:.1f}]"
                           f"<br>{p.tokens:.0f} tokens / question<extra></extra>" for p in points]))
    for points, name, color, dash in ((curve, "compute-optimal policy", POLICY_COLOR, "solid"),
                                      (oracle, "oracle-difficulty policy (upper bound)", ORACLE_COLOR, "dash")):
        points = sorted(points, key=lambda p: p.tokens)
        if not points:
            continue
        xs = [p.tokens for p in points]
        fig.add_trace(go.Scatter(x=xs + xs[::-1], y=[p.ci_high for p in points] + [p.ci_low for p in points][::-1],
                                 fill="toself", fillcolor="rgba(120, 120, 120, 0.15)", line={"width": 0},
                                 hoverinfo="skip", showlegend=False))
        fig.add_trace(go.Scatter(
            x=xs, y=[p.accuracy for p in points], mode="lines+markers", name=name,
            line={"color": color, "width": 3, "dash": dash, "shape": "hv"}, marker={"size": 4, "color": color},
            hovertemplate=[f"{name}<br>{100 * p.accuracy:.1f}% [{100 * p.ci_low:.1f}, {100 * p.ci_high:.1f}]"
                           f"<br>{p.tokens:.0f} tokens / question<extra></extra>" for p in points]))
    if reference is not None:
        fig.add_trace(go.Scatter(x=[reference.tokens], y=[reference.accuracy], mode="markers",
                                 name=f"reference: {reference.label}",
                                 marker={"size": 18, "color": "rgba(0,0,0,0)", "line": {"width": 2, "color": "crimson"}},
                                 hoverinfo="skip"))
        fig.add_hline(y=reference.accuracy, line={"color": "crimson", "width": 1, "dash": "dot"})
    fig.update_layout(title={"text": title + (f"<br><sup>{caption}</sup>" if caption else "")},
                      xaxis={"title": "mean tokens per question, the probe's included (log)", "type": "log"},
                      yaxis={"title": "accuracy", "tickformat": ".0%", "rangemode": "tozero"},
                      template="plotly_white", height=480, legend={"font": {"size": 11}})
    return fig
