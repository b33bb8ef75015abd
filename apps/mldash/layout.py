"""The page, built from small component functions with dash-bootstrap-components.

Element ids are part of the contract (tests, docs): metric-select, model-name, deploy-button, refresh-button,
deployed-models, remove-button, logs-button, logs, input-text, predict-button, result, monitoring-measure,
monitoring-graph and monitoring-alerts are the controls a person uses. Columns stack below Bootstrap's `lg`
breakpoint (992 px), so no width down to a phone scrolls sideways.
"""

from __future__ import annotations

import dash_bootstrap_components as dbc
from dash import dash_table, dcc, html

from apps.mldash.monitoring import MEASURES
from mlplatform.names import NAME_RULE

COMPARISON_METRICS = ["val_f1", "val_accuracy", "val_loss", "train_loss"]


def _card(title: str, *children, subtitle: str | None = None) -> dbc.Card:
    header = [html.H5(title, className="mb-0")]
    if subtitle:
        header.append(html.Small(subtitle, className="text-body-secondary"))
    return dbc.Card([dbc.CardHeader(header), dbc.CardBody(list(children))], className="mb-3 shadow-sm")


def _status(id_: str) -> html.Div:
    """Where a callback puts its dismissable alert."""
    return html.Div(id=id_, className="status")


def runs_table() -> dash_table.DataTable:
    return dash_table.DataTable(
        id="runs-table",
        columns=[],
        data=[],
        row_selectable="single",
        sort_action="native",
        filter_action="native",
        page_size=8,
        style_table={"overflowX": "auto", "minWidth": "100%"},
        style_cell={"fontFamily": "inherit", "fontSize": "0.85rem", "padding": "4px 8px", "textAlign": "left"},
        style_header={"fontWeight": "600", "backgroundColor": "#f1f3f5"},
        style_data={"whiteSpace": "nowrap"},
        style_cell_conditional=[
            {"if": {"column_id": "run"}, "maxWidth": "240px", "overflow": "hidden", "textOverflow": "ellipsis"}
        ],
        tooltip_delay=300,
        tooltip_duration=None,
    )


def runs_section() -> dbc.Card:
    return _card(
        "1. Runs",
        dbc.Row(
            [
                dbc.Col(dbc.Label("Metric that picks the best run", html_for="metric-select"), width="auto"),
                dbc.Col(
                    dcc.Dropdown(
                        id="metric-select",
                        placeholder="Choose a metric",
                        clearable=False,
                        persistence=True,
                        persistence_type="local",
                    ),
                    xs=12,
                    sm=True,
                ),
            ],
            className="g-2 align-items-center mb-2",
        ),
        _status("metric-status"),
        dcc.Loading(runs_table(), type="dot", delay_show=300),
        html.Small(
            "Sort or filter by any column (e.g. >0.8, or a name). The best run is starred and pre-selected; "
            "select any other row to deploy it instead.",
            className="text-body-secondary d-block mt-1",
        ),
        html.Hr(),
        dbc.Row(
            [
                dbc.Col(
                    dcc.Dropdown(id="compare-runs", multi=True, placeholder="Runs to compare"),
                    xs=12,
                    md=8,
                    className="mb-2",
                ),
                dbc.Col(
                    dcc.Dropdown(id="comparison-metric", options=COMPARISON_METRICS, value="val_f1", clearable=False),
                    xs=12,
                    md=4,
                    className="mb-2",
                ),
            ],
            className="g-2",
        ),
        dcc.Graph(id="run-comparison", config={"displayModeBar": False}, style={"height": "360px"}),
        subtitle="the experiment's finished runs, to compare and pick from",
    )


def deployment() -> dbc.Card:
    return _card(
        "2. Deploy",
        html.Div(id="best-run", className="mb-2"),
        dbc.Label("Model name", html_for="model-name"),
        dbc.InputGroup(
            [
                dbc.Input(id="model-name", type="text", placeholder="model name", debounce=False, maxLength=64),
                dbc.Button("Deploy", id="deploy-button", color="primary", n_clicks=0),
            ]
        ),
        dbc.FormText(NAME_RULE),
        html.Div(id="model-name-error", className="text-danger small"),
        dcc.Loading(_status("deploy-status"), type="circle", delay_show=200),
        subtitle="registers the selected run, moves the alias, and MLFlask serves it",
    )


def deployed_models() -> dbc.Card:
    return _card(
        "3. Deployed models",
        dbc.ButtonGroup(
            [
                dbc.Button("Refresh", id="refresh-button", color="secondary", outline=True, n_clicks=0),
                dbc.Button("Remove", id="remove-button", color="danger", outline=True, n_clicks=0),
                dbc.Button("Logs", id="logs-button", color="secondary", outline=True, n_clicks=0),
            ],
            className="mb-2 flex-wrap",
        ),
        dcc.Loading(
            [dbc.RadioItems(id="deployed-models", options=[], className="mb-2"), _status("deployed-status")],
            type="dot",
            delay_show=300,
        ),
        dcc.Loading(html.Div(id="model-card"), type="circle", delay_show=300),
        html.Div(id="logs", className="mt-2"),
    )


def prediction() -> dbc.Card:
    return _card(
        "4. Try a model",
        dbc.Label("Up to four sentences, one per line", html_for="input-text"),
        dbc.Textarea(id="input-text", rows=4, className="mb-2"),
        dbc.Button("Predict", id="predict-button", color="primary", n_clicks=0),
        dcc.Loading(html.Div(id="result", className="mt-3"), type="circle", delay_show=200),
        subtitle="with the model selected in 3",
    )


def monitoring_section() -> dbc.Card:
    return _card(
        "5. Monitoring",
        dcc.Dropdown(id="monitoring-measure", options=MEASURES, value="drift_score", clearable=False, className="mb-2"),
        dcc.Graph(id="monitoring-graph", config={"displayModeBar": False}, style={"height": "300px"}),
        html.Div(id="monitoring-alerts"),
        subtitle="the served model's inputs and answers against its training data, per window",
    )


def page() -> html.Div:
    return html.Div(
        [
            dbc.Navbar(
                dbc.Container(
                    [
                        dbc.NavbarBrand(html.H1("MLDash", className="h4 mb-0"), className="me-3"),
                        html.Span("movie review sentiment", className="navbar-text text-white-50 small"),
                    ],
                    fluid=True,
                ),
                color="dark",
                dark=True,
                className="mb-3",
            ),
            dcc.Location(id="url"),
            dcc.Store(id="best-run-store"),
            dcc.Store(id="suggested-name"),
            dcc.Store(id="deployed-event"),
            dbc.Container(
                dbc.Row(
                    [
                        dbc.Col([runs_section(), deployment()], xs=12, lg=7),
                        dbc.Col([deployed_models(), prediction(), monitoring_section()], xs=12, lg=5),
                    ]
                ),
                fluid=True,
                style={"maxWidth": "1600px"},
            ),
        ]
    )
