"""The Learn page's figures: the vote of one problem's samples, and accuracy vs budget by difficulty
from the recorded samples (the one budget figure of viz.curves, one panel per level)."""
from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

from reasoning.budget import BudgetPoint
from viz.curves import budget_figure

RIGHT, WRONG = "#1a9850", "#d73027"


def votes_figure(table: Sequence[tuple[str, float, bool]]) -> go.Figure:
    """Votes per answer (reasoning.lab.lesson.votes: answer, votes, right?), right answers green."""
    fig = go.Figure(go.Bar(x=[a for a, _, _ in table], y=[v for _, v, _ in table],
                           marker_color=[RIGHT if ok else WRONG for _, _, ok in table]))
    fig.update_layout(height=260, margin=dict(t=30, b=30), xaxis_title="answer (green = right)",
                      yaxis_title="votes", xaxis_type="category", title="Votes per answer")
    return fig


def budget_by_level_figure(points: Sequence[BudgetPoint]) -> go.Figure:
    """pass@k, majority and weighted best-of-k against k, one panel per difficulty level in one row."""
    levels = {p.group for p in points}
    return budget_figure(points, "samples", by="difficulty", columns=max(1, len(levels)), height=440,
                         title="Accuracy vs samples, by difficulty")
