"""The page, built from small component functions. Element ids are part of the contract (tests, docs)."""

from __future__ import annotations

from dash import dcc, html

from mlplatform.names import NAME_RULE

_COLUMN = {"flex": "1 1 560px", "minWidth": 0}  # two columns on a laptop screen, one on a phone
_CARD = {"border": "1px solid #ddd", "borderRadius": "6px", "padding": "12px 16px", "marginBottom": "14px"}


def _section(title: str, *children) -> html.Div:
    return html.Div([html.H3(title, style={"marginTop": 0}), *children], style=_CARD)


def model_selection() -> html.Div:
    return _section(
        "1. Metric selection",
        dcc.Dropdown(id="metric-select", placeholder="Choose a metric", clearable=False),
        html.Div(id="metric-status", className="status"),
        html.Div(id="best-run", style={"marginTop": "8px"}),
        dcc.RadioItems(id="comparison-metric", options=["val_accuracy", "val_f1"], value="val_f1", inline=True),
        dcc.Graph(id="run-comparison", config={"displayModeBar": False}),
    )


def deployment() -> html.Div:
    return _section(
        "2. Model naming and deployment",
        dcc.Input(
            id="model-name",
            type="text",
            placeholder="model name",
            debounce=False,
            style={"width": "320px", "marginRight": "8px"},
        ),
        html.Button("Deploy", id="deploy-button", n_clicks=0),
        html.Div(id="model-name-error", style={"color": "#b00"}, title=NAME_RULE),
        html.Div(id="deploy-status", className="status"),
    )


def deployed_models() -> html.Div:
    return _section(
        "3. Deployed models",
        html.Button("Refresh", id="refresh-button", n_clicks=0, style={"marginRight": "8px"}),
        html.Button("Remove", id="remove-button", n_clicks=0, style={"marginRight": "8px"}),
        html.Button("Logs", id="logs-button", n_clicks=0),
        dcc.RadioItems(id="deployed-models", options=[], labelStyle={"display": "block"}),
        html.Div(id="deployed-status", className="status"),
        html.Div(id="model-card", style={"marginTop": "8px"}),
        html.Pre(id="logs", style={"maxHeight": "240px", "overflowY": "auto", "background": "#f7f7f7"}),
    )


def prediction() -> html.Div:
    return _section(
        "4. Test a model",
        html.Label("Input text (one sentence per line, up to four)", htmlFor="input-text"),
        dcc.Textarea(id="input-text", style={"width": "100%", "height": "110px"}),
        html.Button("Predict", id="predict-button", n_clicks=0),
        html.Div(id="result", style={"marginTop": "8px"}),
        dcc.Graph(id="result-graph", config={"displayModeBar": False}, style={"display": "none"}),
    )


def page() -> html.Div:
    return html.Div(
        [
            html.H1("MLDash: movie review sentiment"),
            html.P("Pick a metric, deploy its best run to MLFlask, then try it on your own sentences."),
            dcc.Location(id="url"),
            dcc.Store(id="best-run-store"),
            html.Div(
                [
                    html.Div([model_selection(), deployment()], style={**_COLUMN, "marginRight": "14px"}),
                    html.Div([deployed_models(), prediction()], style=_COLUMN),
                ],
                style={"display": "flex", "flexWrap": "wrap"},
            ),
        ],
        style={"fontFamily": "sans-serif", "maxWidth": "1300px", "margin": "0 auto", "padding": "10px"},
    )
