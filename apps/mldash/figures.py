"""Pure functions from data to plotly figures."""

from __future__ import annotations

import plotly.graph_objects as go


def run_comparison(
    curves: dict[str, list[tuple[int, float]]],
    names: dict[str, str],
    metric: str,
    epoch_ends: dict[str, list[int]] | None = None,
) -> go.Figure:
    """One line per run: `metric` by global step, with each run's epoch ends marked, on a sensible axis
    (scores in [0, 1], losses from 0)."""
    figure = go.Figure()
    for run_id, points in curves.items():
        if points:
            steps, values = zip(*points, strict=True)
            figure.add_scatter(x=steps, y=values, mode="lines+markers", name=names.get(run_id, run_id[:8]))
    marked = sorted({step for ends in (epoch_ends or {}).values() for step in ends})
    for step in marked:
        figure.add_vline(x=step, line_dash="dot", line_color="grey", opacity=0.5)
    values = [v for points in curves.values() for _, v in points]
    is_loss = "loss" in metric.lower()
    top = max(values, default=1.0) * 1.1 if is_loss else 1.0
    figure.update_layout(
        title=f"{metric} by step, chosen runs" + (" (dotted: end of an epoch)" if marked else ""),
        xaxis={"title": "step", "rangemode": "tozero"},
        yaxis={"title": metric, "range": [0, top if is_loss else 1.0]},
        height=360,
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
        legend={"orientation": "h", "y": -0.25},
    )
    return figure


def empty(message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=200)
    return figure
