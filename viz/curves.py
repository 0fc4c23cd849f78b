"""Accuracy vs budget as a plotly figure: one line per curve with its 95% CI as a filled band,
log2 budget axis, facets side by side, the compute-optimal frontier on top.

Honesty is part of the picture: the subtitle names the model, verifier, number of problems, seeds
and estimators; pass@k (oracle coverage) is a dashed line labelled as an upper bound, and so is any
curve whose verifier saw the gold answers.
"""
from __future__ import annotations

import math
from html import escape
from collections import defaultdict
from typing import Hashable, Sequence

import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from reasoning.budget import BudgetPoint, FrontierStep

AXIS_TITLES = {
    "samples": "budget N (samples or beams, log2)",
    "tokens": "generated tokens per problem (log)",
    "flops": "FLOPs per problem, policy + verifier (log)",
    "thinking": "thinking tokens per problem (log2)",
    "seconds": "wall-clock seconds per problem (log)",
    "prompt_tokens": "prompt (prefill) tokens per problem (log)",
}
FACET_TITLES = {"difficulty": "difficulty {}", "pass1": "pass@1 bin {} (1 = easiest)"}
PALETTE = qualitative.Plotly
FRONTIER_COLOR = "rgba(20, 20, 20, 0.85)"
MAX_FACET_COLUMNS = 3


def budget_figure(points: Sequence[BudgetPoint], x: str = "samples", *, frontier: Sequence[FrontierStep] = (),
                  by: str | None = None, title: str = "", caption: str = "", height: int | None = None,
                  columns: int = MAX_FACET_COLUMNS) -> go.Figure:
    """Accuracy against `x` ("samples", "tokens" or "flops") for every curve in `points`, one
    panel per facet group (`by` names the facet for panel titles), at most `columns` panels a row.
    Points without a value on the x axis (FLOPs of a model of unknown size) are left out.
    `frontier` comes from reasoning.budget.frontier on the same axis (none: no frontier drawn).
    The Budget page, `curves --html`, the HTML report and the Learn page all draw this figure.
    `title`, `caption` and curve names are plain text (a run's name, model, dataset): escaped here,
    as plotly renders its text as HTML (links included)."""
    points = [p for p in points if p.x(x) is not None and p.x(x) > 0]
    groups = sorted({p.group for p in points}, key=lambda g: (g is None, g))
    if not groups:
        groups = [None]
    columns = min(len(groups), columns)
    rows = math.ceil(len(groups) / columns)
    template = FACET_TITLES.get(by or "", "{}")
    subplot_titles = [template.format(g) if g is not None else ("no level" if by else "") for g in groups]
    fig = make_subplots(rows=rows, cols=columns, shared_yaxes=True, subplot_titles=subplot_titles,
                        horizontal_spacing=0.04, vertical_spacing=0.12)
    colors = _colors(points)
    for index, group in enumerate(groups):
        row, col = index // columns + 1, index % columns + 1
        curves: dict[str, list[BudgetPoint]] = defaultdict(list)
        for p in points:
            if p.group == group:
                curves[p.curve].append(p)
        for name, members in curves.items():
            members.sort(key=lambda p: p.x(x))
            for trace in _curve_traces(name, members, x, colors[name], show_legend=index == 0):
                fig.add_trace(trace, row=row, col=col)
        # the frontier's distinct points, where they lie (a point stays best over several budgets)
        best = sorted({id(s.point): s.point for s in frontier if s.point.group == group}.values(), key=lambda p: p.x(x))
        if best:
            fig.add_trace(_frontier_trace(best, x, show_legend=index == 0), row=row, col=col)

    axis = dict(type="log", title_text=AXIS_TITLES[x], showgrid=True)
    if x in ("samples", "thinking"):
        axis.update(dtick=math.log10(2))  # a tick at every power of two
    else:
        axis.update(tickformat=".2s")
    fig.update_xaxes(**axis)
    fig.update_yaxes(range=[-0.02, 1.02], tickformat=".0%", showgrid=True)
    fig.update_yaxes(title_text="accuracy", col=1)
    fig.update_layout(
        title=dict(text=escape(title or "Accuracy vs budget"), subtitle=dict(text=escape(caption))),
        height=height or 320 * rows + 180, margin=dict(t=110, l=60, r=20, b=60),
        legend=dict(orientation="h", yanchor="top", y=-0.18, x=0),
        hovermode="closest", template="plotly_white",
    )
    return fig


def _colors(points: Sequence[BudgetPoint]) -> dict[str, str]:
    """One colour per curve, the same in every panel; upper bounds in grey."""
    names = list(dict.fromkeys(p.curve for p in points))
    achievable = [n for n in names if not any(p.upper_bound for p in points if p.curve == n)]
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(achievable)}
    colors.update({name: "#7f7f7f" for name in names if name not in colors})
    return colors


def _rgba(color: str, alpha: float) -> str:
    color = color.lstrip("#")
    r, g, b = (int(color[i:i + 2], 16) for i in (0, 2, 4))
    return f"rgba({r}, {g}, {b}, {alpha})"


def _hover(p: BudgetPoint) -> str:
    """Names come from users and models (a run's model, a verifier spec): escaped, as in viz.tree."""
    flops = "-" if p.flops is None else f"{p.flops:.3g} (verifier {p.verifier_flops:.3g})"
    bound = "<br><b>upper bound</b>: uses the gold answers" if p.upper_bound else ""
    seconds = "" if p.seconds_per_problem is None else f"<br>seconds/problem {p.seconds_per_problem:.3g}"
    prompt = "" if p.prompt_tokens_per_problem is None else f"<br>prompt tokens/problem {p.prompt_tokens_per_problem:.0f}"
    return (f"<b>{escape(p.curve)}</b><br>estimator {p.estimator}, N = {p.k}<br>accuracy {100 * p.accuracy:.1f}% "
            f"[{100 * p.ci_low:.1f}, {100 * p.ci_high:.1f}]<br>tokens/problem {p.tokens_per_problem:.0f}{prompt}<br>"
            f"FLOPs {flops}{seconds}<br>{' · '.join(_provenance(p))}{bound}")


def _provenance(p: BudgetPoint) -> list[str]:
    parts = [f"{p.n_problems} problems"] + ([escape(p.model)] if p.model else [])
    parts.append(f"verifier {escape(p.verifier or 'none')}")
    return parts + ([f"seed {p.seed}"] if p.seed is not None else []) + (
        [f"mean of {p.n_seeds} seeds"] if p.n_seeds > 1 else [])


def _curve_traces(name: str, members: list[BudgetPoint], x: str, color: str, show_legend: bool) -> list[go.Scatter]:
    xs = [p.x(x) for p in members]
    upper = any(p.upper_bound for p in members)
    line = dict(color=color, width=2, dash="dash" if upper else "solid")
    traces = []
    if len(members) > 1:
        traces.append(go.Scatter(
            x=xs + xs[::-1], y=[p.ci_high for p in members] + [p.ci_low for p in members][::-1],
            mode="lines", fill="toself", fillcolor=_rgba(color, 0.10 if upper else 0.18), line=dict(width=0),
            hoverinfo="skip", showlegend=False, legendgroup=name, name=escape(f"{name} 95% CI")))
    traces.append(go.Scatter(
        x=xs, y=[p.accuracy for p in members], mode="lines+markers", name=escape(name), legendgroup=name,
        showlegend=show_legend, line=line, marker=dict(color=color, size=7),
        error_y=None if len(members) > 1 else dict(
            type="data", symmetric=False, array=[members[0].ci_high - members[0].accuracy],
            arrayminus=[members[0].accuracy - members[0].ci_low], color=color),
        hovertext=[_hover(p) for p in members], hoverinfo="text"))
    return traces


def _frontier_trace(best: list[BudgetPoint], x: str, show_legend: bool) -> go.Scatter:
    return go.Scatter(
        x=[p.x(x) for p in best], y=[p.accuracy for p in best], mode="lines+markers",
        name="compute-optimal frontier", legendgroup="frontier", showlegend=show_legend,
        line=dict(color=FRONTIER_COLOR, width=1.5, dash="dot"),
        marker=dict(symbol="circle-open", size=14, color=FRONTIER_COLOR, line=dict(width=2)),
        hovertext=[f"frontier: <b>{escape(p.curve)}</b> at N = {p.k}, {100 * p.accuracy:.1f}%" for p in best],
        hoverinfo="text")


def group_label(by: str | None, group: Hashable | None) -> str:
    """How a facet group reads in tables: "difficulty 3", "pass@1 bin 2 (1 = easiest)"."""
    if by is None or group is None:
        return "all" if by is None else "no level"
    return FACET_TITLES[by].format(group)
