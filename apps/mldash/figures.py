"""Pure functions from data to plotly figures."""

from __future__ import annotations

import plotly.graph_objects as go

_COLORS = {"negative": "#d62728", "positive": "#2ca02c"}


def probabilities(texts: list[str], predictions: list[dict]) -> go.Figure:
    """A horizontal stacked bar per sentence: P(negative) and P(positive)."""
    labels = [t if len(t) <= 40 else t[:37] + "..." for t in texts]
    figure = go.Figure()
    for label in ("negative", "positive"):
        figure.add_bar(
            y=labels,
            x=[p["probabilities"].get(label, 0) for p in predictions],
            name=label,
            orientation="h",
            marker_color=_COLORS[label],
        )
    figure.update_layout(
        barmode="stack",
        xaxis={"range": [0, 1], "title": "probability"},
        yaxis={"autorange": "reversed"},
        height=120 + 50 * len(texts),
        margin={"l": 10, "r": 10, "t": 30, "b": 40},
        title="Prediction probabilities",
    )
    return figure


def run_comparison(curves: dict[str, list[tuple[int, float]]], names: dict[str, str], metric: str) -> go.Figure:
    """One line per run: `metric` by epoch, so learning curves compare at a glance."""
    figure = go.Figure()
    for run_id, points in curves.items():
        if points:
            steps, values = zip(*points, strict=True)
            figure.add_scatter(x=steps, y=values, mode="lines+markers", name=names.get(run_id, run_id[:8]))
    figure.update_layout(
        title=f"{metric} per epoch, top runs",
        xaxis={"title": "epoch", "dtick": 1},
        yaxis={"title": metric},
        height=360,
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
    )
    return figure


def empty(message: str) -> go.Figure:
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_layout(xaxis={"visible": False}, yaxis={"visible": False}, height=200)
    return figure
