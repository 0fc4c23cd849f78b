"""Scale what? as a figure (Snell et al. 2024, Fig. 9): per difficulty, how many points of accuracy the
smaller model with test-time compute gains over the larger model answering greedily, at equal total
FLOPs, against the ratio of inference to pre-training tokens (log). Above the zero line test-time
compute wins; below, pre-training does. Filled markers: the two 95% intervals do not overlap."""
from __future__ import annotations

from collections import defaultdict
from typing import Sequence

import plotly.graph_objects as go
from plotly.colors import sequential

from reasoning.scale import Exchange


def scale_figure(exchanges: Sequence[Exchange], *, title: str = "", caption: str = "") -> go.Figure:
    by_group: dict = defaultdict(list)
    for e in exchanges:
        if e.gain is not None:
            by_group[e.group].append(e)
    groups = sorted(by_group, key=lambda g: (g is None, g))
    colors = sequential.Viridis
    fig = go.Figure()
    for i, group in enumerate(groups):
        points = sorted(by_group[group], key=lambda e: e.ratio)
        color = colors[int(i * (len(colors) - 1) / max(1, len(groups) - 1))]
        fig.add_trace(go.Scatter(
            x=[e.ratio for e in points], y=[e.gain for e in points], mode="lines+markers",
            name=f"difficulty {group}" if group is not None else "all", line={"color": color, "width": 2},
            marker={"size": 9, "color": [color if e.significant else "white" for e in points],
                    "line": {"color": color, "width": 2}},
            hovertemplate=[f"{e.sentence()}<br>small: run {(e.small.run_id or '')[:8]} · large: run "
                           f"{(e.large.run_id or '')[:8]}<extra></extra>" for e in points]))
    fig.add_hline(y=0, line={"color": "black", "width": 1})
    fig.update_layout(title={"text": title + (f"<br><sup>{caption}</sup>" if caption else "")},
                      xaxis={"title": "inference tokens / pre-training tokens, R (log)", "type": "log"},
                      yaxis={"title": "smaller model + test-time compute − larger model greedy (points)"},
                      template="plotly_white", height=460)
    return fig
