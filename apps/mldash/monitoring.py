"""The Monitoring panel: drift measures per window (from the model_monitoring runs in MLflow), the threshold,
and the latest window's alerts."""

from __future__ import annotations

from datetime import timedelta

import dash_bootstrap_components as dbc
import plotly.graph_objects as go
from dash import html

from apps.mldash import figures
from apps.mldash.views import _BAD, _error, alert
from mlplatform.monitoring.drift import DRIFT_MEASURES
from mlplatform.monitoring.history import windows

MEASURES = [
    {"label": "drift score (largest PSI)", "value": "drift_score"},
    *({"label": name.replace("_", " "), "value": name} for name in DRIFT_MEASURES),
    {"label": "live accuracy (feedback)", "value": "live_accuracy"},
    {"label": "mean confidence", "value": "mean_confidence"},
]
_THRESHOLDED = {"drift_score", *DRIFT_MEASURES}


def panel(backend, measure: str | None):
    """(figure, alerts) for MODEL_NAME's monitoring windows; `measure` is checked against the list offered."""
    allowed = {m["value"] for m in MEASURES}
    measure = measure if measure in allowed else "drift_score"
    settings = backend.settings
    try:
        found = windows(backend.registry, settings.mlflow_exp_name, settings.model_name)
    except Exception as exc:  # noqa: BLE001
        return figures.empty("MLflow is unreachable"), alert(_error(exc), _BAD)
    if not found:
        return (
            figures.empty("No monitoring windows yet"),
            alert("Run model_monitoring (Dagster) or python jobs/model_monitoring.py.", "secondary"),
        )
    latest = found[-1]
    return trend(found, measure, settings.drift_threshold if measure in _THRESHOLDED else None), latest_alerts(latest)


def trend(found, measure: str, threshold: float | None) -> go.Figure:
    points = [(w.end, w.metrics[measure], w) for w in found if measure in w.metrics]
    figure = go.Figure()
    figure.add_scatter(
        x=[p[0] for p in points],
        y=[p[1] for p in points],
        mode="lines+markers",
        name=measure,
        text=[f"v{w.version}: {w.status}" for _, _, w in points],
        marker={"color": ["#dc3545" if w.alerts else "#0d6efd" for _, _, w in points], "size": 9},
    )
    if threshold is not None:
        figure.add_hline(y=threshold, line_dash="dash", line_color="#dc3545", annotation_text="DRIFT_THRESHOLD")
    if len(points) == 1:  # one window: a day around it, not an axis of microseconds
        figure.update_xaxes(range=[points[0][0] - timedelta(hours=12), points[0][0] + timedelta(hours=12)])
    figure.update_layout(
        title=f"{measure} by window (red: the window raised alerts)",
        xaxis={"title": "window end (UTC)"},
        yaxis={"title": measure, "rangemode": "tozero"},
        height=300,
        margin={"l": 10, "r": 10, "t": 40, "b": 40},
        showlegend=False,
    )
    return figure


def latest_alerts(latest) -> html.Div:
    heading = f"Latest window, ending {latest.end:%Y-%m-%d %H:%M} UTC (version {latest.version}): {latest.status}"
    if not latest.alerts:
        return dbc.Alert(heading + ". No alerts.", color="success", className="mt-2 mb-0 py-2")
    return dbc.Alert(
        [html.Div(heading), html.Ul([html.Li(a) for a in latest.alerts], className="mb-0")],
        color="danger",
        className="mt-2 mb-0 py-2",
        id="monitoring-alert-list",
    )
