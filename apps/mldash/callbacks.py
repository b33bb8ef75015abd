"""Callbacks: thin wrappers over plain functions that take the Backend, so tests can call them directly.

Every input is untrusted (anyone can POST to /_dash-update-component): names, run ids and texts are
validated here again, and every failure becomes a message in the page, never an exception.
"""

from __future__ import annotations

import json
import re

from dash import Dash, Input, Output, State, ctx, dcc, html, no_update

from apps.mldash import figures
from apps.mldash.backend import Backend
from mlplatform.client import MLFlaskUnavailable
from mlplatform.errors import PlatformError
from mlplatform.names import NAME_RULE, is_valid_name
from mlplatform.promotion import promote_and_serve
from mlplatform.runs import METRIC_RE, RUN_ID_RE, maximise

MAX_SENTENCES = 4
MAX_CHARS = 5000
_HIDDEN = {"display": "none"}


def _error(exc: Exception) -> str:
    if isinstance(exc, MLFlaskUnavailable):
        return f"MLFlask is unreachable ({exc.message}). Start it, then try again."
    if isinstance(exc, PlatformError):
        return str(exc)
    return f"Unexpected error: {type(exc).__name__}"


def suggested_name(run_name: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", run_name).strip("-.")[:64]
    return name if is_valid_name(name) else "movie-sentiment"


def metric_options(backend: Backend, current: str | None = None):
    """(options, value, status) for the metric dropdown; a still-valid current choice is kept."""
    try:
        names = backend.metric_names()
    except Exception as exc:  # noqa: BLE001 - shown to the user
        return [], None, f"MLflow: {_error(exc)}"
    if not names:
        return (
            [],
            None,
            (f"No finished runs yet in experiment {backend.settings.mlflow_exp_name!r}: run jobs/finetune.py first."),
        )
    preferred = current if current in names else next((m for m in ("val_f1", "val_accuracy") if m in names), names[0])
    return [{"label": n, "value": n} for n in names], preferred, ""


def best_run(backend: Backend, metric: str | None, comparison_metric: str | None):
    """(best-run panel, store data, suggested name, comparison figure, status)."""
    if not metric or not METRIC_RE.fullmatch(str(metric)):
        return None, None, no_update, figures.empty("Choose a metric"), ""
    try:
        top = backend.top_runs(metric)
        if not top:
            return None, None, no_update, figures.empty("No runs"), f"No finished run has the metric {metric!r}."
        best = top[0]
        comparison_metric = comparison_metric if comparison_metric in ("val_accuracy", "val_f1") else "val_f1"
        curves = backend.histories([r.run_id for r in top], comparison_metric)
        epochs = backend.histories([r.run_id for r in top], "epoch")
    except Exception as exc:  # noqa: BLE001
        return None, None, no_update, figures.empty("MLflow unavailable"), f"MLflow: {_error(exc)}"
    direction = "highest" if maximise(metric) else "lowest"
    keys = ("pretrained_model", "learning_rate", "epochs", "batch_size", "max_length", "train_size")
    panel = html.Div(
        [
            html.Div([html.B("Best run "), html.Code(best.run_id), f" ({best.run_name})"]),
            html.Div(f"{metric} = {best.metric_value:.4f} ({direction} of {len(top)} shown)", id="best-metric"),
            html.Ul([html.Li(f"{k}: {best.params[k]}") for k in keys if k in best.params]),
        ]
    )
    store = {"run_id": best.run_id, "metric": metric}
    names = {r.run_id: r.run_name or r.run_id[:8] for r in top}
    return (
        panel,
        store,
        suggested_name(best.run_name),
        figures.run_comparison(curves, names, comparison_metric, _epoch_ends(epochs)),
        "",
    )


def _epoch_ends(epochs: dict[str, list[tuple[int, float]]]) -> dict[str, list[int]]:
    """The steps where each run finished an epoch (its `epoch` metric reached a whole number)."""
    return {
        run_id: [step for step, epoch in points if epoch >= 1 and abs(epoch - round(epoch)) < 1e-6]
        for run_id, points in epochs.items()
    }


def deploy(backend: Backend, name, store):
    """(status, inline name error)."""
    if not is_valid_name(name):
        return "", f"Invalid name: use {NAME_RULE}."
    if not isinstance(store, dict) or not RUN_ID_RE.fullmatch(str(store.get("run_id"))):
        return "Choose a metric first, so there is a run to deploy.", ""
    metric = store.get("metric") if METRIC_RE.fullmatch(str(store.get("metric"))) else None
    try:
        promotion, record, _ = promote_and_serve(
            backend.settings, backend.client, name, run_id=store["run_id"], metric=metric
        )
    except Exception as exc:  # noqa: BLE001
        return f"Deploy failed: {_error(exc)}", ""
    return (
        f"Deployed {record['name']}: {promotion.ref.uri} = version {promotion.version} (run {promotion.run_id}).",
        "",
    )


def deployed_list(backend: Backend, remove: str | None = None):
    """(options, value, status); removes `remove` first when given."""
    status = ""
    try:
        if remove is not None:
            if not is_valid_name(remove):
                return no_update, no_update, "Select a deployed model to remove."
            backend.client.remove(remove)
            status = f"Removed {remove}."
        models = backend.client.models()
    except Exception as exc:  # noqa: BLE001
        return [], None, _error(exc)
    options = [
        {"label": f"{m['name']}  (run {m['run_id'][:8]}, {m['deployed_at']})", "value": m["name"]} for m in models
    ]
    if not models:
        status = (status + " No models deployed.").strip()
    return options, None, status


def model_card(backend: Backend, name):
    if not is_valid_name(name):
        return None
    try:
        record = backend.client.model(name)
    except Exception as exc:  # noqa: BLE001
        return _error(exc)
    if record is None:
        return f"{name} is no longer deployed."
    following = f"@{record['alias']}" if record.get("alias") else " (pinned)"
    rows = [
        ("registered model", f"{record.get('registered_model')} version {record.get('version')}{following}"),
        ("source", record.get("model_uri", "")),
        ("run", record["run_id"]),
        ("run name", record.get("run_name") or ""),
        ("deployed at", record["deployed_at"]),
        *[(k, f"{v:.4f}") for k, v in sorted((record.get("metrics") or {}).items())],
        *[(k, v) for k, v in (record.get("params") or {}).items()],
    ]
    if record.get("follow_error"):
        rows.insert(0, ("follow error", record["follow_error"]))
    link = backend.run_url(record.get("experiment_id") or "0", record["run_id"])
    return html.Div(
        [
            html.H4(record["name"]),
            html.Table(
                [
                    html.Tr([html.Td(k, style={"paddingRight": "12px", "color": "#555"}), html.Td(str(v))])
                    for k, v in rows
                ]
            ),
            html.A("Open the run in the MLflow UI", href=link, target="_blank"),
            dcc.Markdown(record.get("card") or "", id="model-card-markdown"),
        ],
        id="model-card-body",
    )


def logs(backend: Backend) -> str:
    try:
        entries = backend.client.logs(100)
    except Exception as exc:  # noqa: BLE001
        return _error(exc)
    if not entries:
        return "No actions yet."
    return "\n".join(
        f"{e['time']}  {e['action']:<15} "
        + json.dumps({k: v for k, v in e.items() if k not in ("time", "action")}, sort_keys=True)
        for e in entries
    )


def predict(backend: Backend, model, text):
    """(result, figure, figure style)."""
    if not is_valid_name(model):
        return "Select a deployed model first (Refresh, then pick one).", no_update, _HIDDEN
    if not isinstance(text, str):
        return "Type at least one sentence.", no_update, _HIDDEN
    sentences = [line.strip() for line in text.splitlines() if line.strip()]
    if not sentences:
        return "Type at least one sentence.", no_update, _HIDDEN
    if len(sentences) > MAX_SENTENCES:
        return (
            f"Up to {MAX_SENTENCES} sentences, one per line: you typed {len(sentences)}. Nothing was sent.",
            no_update,
            _HIDDEN,
        )
    if any(len(s) > MAX_CHARS for s in sentences):
        return f"Each sentence may have up to {MAX_CHARS} characters.", no_update, _HIDDEN
    try:
        response = backend.client.predict(model, sentences)
    except Exception as exc:  # noqa: BLE001
        return f"Prediction failed: {_error(exc)}", no_update, _HIDDEN
    items = [
        html.Li(
            [html.B(p["label"], className=f"label-{p['label']}"), f" ({p['score']:.3f}) ", s], className="prediction"
        )
        for s, p in zip(sentences, response["predictions"], strict=True)
    ]
    result = html.Div([html.Div(f"{model} (run {response['run_id'][:8]})"), html.Ul(items, id="predictions")])
    return result, figures.probabilities(sentences, response["predictions"]), {"display": "block"}


def register(app: Dash, backend: Backend) -> None:
    """Wire the plain functions above to the page's ids."""

    @app.callback(
        Output("metric-select", "options"),
        Output("metric-select", "value"),
        Output("metric-status", "children"),
        Input("url", "pathname"),
        Input("refresh-button", "n_clicks"),
        State("metric-select", "value"),
    )
    def _metrics(_path, _refresh, current):
        return metric_options(backend, current)

    @app.callback(
        Output("best-run", "children"),
        Output("best-run-store", "data"),
        Output("model-name", "value"),
        Output("run-comparison", "figure"),
        Output("deploy-status", "children", allow_duplicate=True),
        Input("metric-select", "value"),
        Input("comparison-metric", "value"),
        prevent_initial_call=True,
    )
    def _best(metric, comparison):
        return best_run(backend, metric, comparison)

    @app.callback(
        Output("deploy-status", "children"),
        Output("model-name-error", "children"),
        Input("deploy-button", "n_clicks"),
        State("model-name", "value"),
        State("best-run-store", "data"),
        prevent_initial_call=True,
    )
    def _deploy(_, name, store):
        return deploy(backend, name, store)

    @app.callback(
        Output("deployed-models", "options"),
        Output("deployed-models", "value"),
        Output("deployed-status", "children"),
        Input("refresh-button", "n_clicks"),
        Input("remove-button", "n_clicks"),
        State("deployed-models", "value"),
    )
    def _deployed(_refresh, _remove, selected):
        if ctx.triggered_id == "remove-button":
            return deployed_list(backend, remove=selected if selected is not None else "")
        return deployed_list(backend)

    @app.callback(Output("model-card", "children"), Input("deployed-models", "value"), prevent_initial_call=True)
    def _card(name):
        return model_card(backend, name)

    @app.callback(Output("logs", "children"), Input("logs-button", "n_clicks"), prevent_initial_call=True)
    def _logs(_):
        return logs(backend)

    @app.callback(
        Output("result", "children"),
        Output("result-graph", "figure"),
        Output("result-graph", "style"),
        Input("predict-button", "n_clicks"),
        State("deployed-models", "value"),
        State("input-text", "value"),
        prevent_initial_call=True,
    )
    def _predict(_, model, text):
        return predict(backend, model, text)
