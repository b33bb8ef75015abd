"""Callbacks: thin wrappers over the plain functions of `views`, which tests call directly.

Buttons are disabled while their callback runs (Dash's `running`), and MLDash lets one deploy run at a time, so a
second click, or a second tab, cannot start another.
"""

from __future__ import annotations

from dash import Dash, Input, Output, State, ctx, no_update

from apps.mldash import monitoring, views
from apps.mldash.backend import Backend


def register(app: Dash, backend: Backend) -> None:
    """Wire the plain functions of `views` to the page's ids."""

    @app.callback(
        Output("metric-select", "options"),
        Output("metric-select", "value"),
        Output("metric-status", "children"),
        Input("url", "pathname"),
        Input("refresh-button", "n_clicks"),
        State("metric-select", "value"),
    )
    def _metrics(_path, _refresh, current):
        return views.metric_options(backend, current)

    @app.callback(
        Output("runs-table", "columns"),
        Output("runs-table", "data"),
        Output("runs-table", "style_data_conditional"),
        Output("runs-table", "selected_rows"),
        Output("compare-runs", "options"),
        Output("compare-runs", "value"),
        Output("metric-status", "children", allow_duplicate=True),
        Input("metric-select", "value"),
        Input("deployed-event", "data"),
        prevent_initial_call=True,
    )
    def _runs(metric, _deployed):
        return views.runs_view(backend, metric)

    @app.callback(
        Output("best-run", "children"),
        Output("best-run-store", "data"),
        Input("runs-table", "selected_rows"),
        State("runs-table", "data"),
        State("metric-select", "value"),
        prevent_initial_call=True,
    )
    def _selected(selected_rows, data, metric):
        return views.selected_run(data, selected_rows, metric)

    @app.callback(
        Output("model-name", "value"),
        Output("suggested-name", "data"),
        Input("best-run-store", "data"),
        State("model-name", "value"),
        State("suggested-name", "data"),
        prevent_initial_call=True,
    )
    def _suggest(store, current, last_suggested):
        return views.name_suggestion(store, current, last_suggested)

    @app.callback(
        Output("run-comparison", "figure"),
        Input("compare-runs", "value"),
        Input("comparison-metric", "value"),
        State("compare-runs", "options"),
    )
    def _curves(run_ids, metric, options):
        return views.comparison(backend, run_ids, metric, options)

    @app.callback(
        Output("deploy-status", "children"),
        Output("model-name-error", "children"),
        Output("deployed-event", "data"),
        Input("deploy-button", "n_clicks"),
        State("model-name", "value"),
        State("best-run-store", "data"),
        running=[(Output("deploy-button", "disabled"), True, False)],
        prevent_initial_call=True,
    )
    def _deploy(_, name, store):
        return views.deploy(backend, name, store)

    @app.callback(
        Output("deployed-models", "options"),
        Output("deployed-models", "value"),
        Output("deployed-status", "children"),
        Input("refresh-button", "n_clicks"),
        Input("remove-button", "n_clicks"),
        Input("deployed-event", "data"),
        State("deployed-models", "value"),
        running=[
            (Output("refresh-button", "disabled"), True, False),
            (Output("remove-button", "disabled"), True, False),
        ],
    )
    def _deployed(_refresh, _remove, deployed, selected):
        if ctx.triggered_id == "remove-button":
            return views.deployed_list(backend, remove=selected if selected is not None else "")
        keep = deployed.get("name") if ctx.triggered_id == "deployed-event" and deployed else selected
        options, value, status = views.deployed_list(backend, keep=keep)
        if value == selected and value is not None:
            value = no_update  # the same model stays selected: its card is not redrawn, so nothing jumps
        return options, value, status

    @app.callback(Output("model-card", "children"), Input("deployed-models", "value"), prevent_initial_call=True)
    def _card(name):
        return views.model_card(backend, name)

    @app.callback(
        Output("logs", "children"),
        Input("logs-button", "n_clicks"),
        running=[(Output("logs-button", "disabled"), True, False)],
        prevent_initial_call=True,
    )
    def _logs(_):
        return views.logs(backend)

    @app.callback(
        Output("monitoring-graph", "figure"),
        Output("monitoring-alerts", "children"),
        Input("monitoring-measure", "value"),
        Input("refresh-button", "n_clicks"),
    )
    def _monitoring(measure, _refresh):
        return monitoring.panel(backend, measure)

    @app.callback(
        Output("result", "children"),
        Input("predict-button", "n_clicks"),
        State("deployed-models", "value"),
        State("input-text", "value"),
        running=[(Output("predict-button", "disabled"), True, False)],
        prevent_initial_call=True,
    )
    def _predict(_, model, text):
        return views.predict(backend, model, text)
