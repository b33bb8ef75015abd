"""What each callback shows, as plain functions of the Backend and the page's values.

Every input is untrusted (anyone can POST to /_dash-update-component): names, run ids, table rows and texts are
validated here again, and every failure becomes an alert in the page, never an exception.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime

import dash_bootstrap_components as dbc
from dash import dcc, html, no_update

from apps.mldash import figures
from apps.mldash.backend import Backend
from mlplatform.errors import PlatformError
from mlplatform.names import NAME_RULE, is_valid_name
from mlplatform.promotion.gate import FAILED_CHECKS, GateResult, PromotionGate
from mlplatform.registry.runs import METRIC_RE, RUN_ID_RE, RunSummary
from mlplatform.serving.client import MLFlaskUnavailable

MAX_SENTENCES = 4
MAX_CHARS = 5000
COMPARED = 5  # runs whose curves are drawn when a metric is chosen
PARAMS = {"pretrained_model": "model", "learning_rate": "lr", "epochs": "epochs", "batch_size": "batch"}
SCORES = ["val_f1", "val_accuracy", "val_loss", "test_f1", "test_accuracy"]
CARD_METRICS = ["val_accuracy", "val_f1", "val_loss", "test_accuracy", "test_f1", "test_roc_auc"]
_BAD, _GOOD = "danger", "success"


def alert(message, color: str = "info") -> dbc.Alert:
    return dbc.Alert(message, color=color, dismissable=True, className="mt-2 mb-0 py-2")


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
        return [], None, alert(f"MLflow: {_error(exc)}", _BAD)
    if not names:
        experiment = backend.settings.mlflow_exp_name
        return [], None, alert(f"No finished runs yet in experiment {experiment!r}: run the pipeline first.", "warning")
    preferred = current if current in names else next((m for m in ("val_f1", "val_accuracy") if m in names), names[0])
    return [{"label": n, "value": n} for n in names], preferred, ""


def _row(run: RunSummary, best: bool) -> dict:
    started = datetime.fromtimestamp(run.start_time / 1000, UTC).strftime("%Y-%m-%d %H:%M") if run.start_time else ""
    row = {"id": run.run_id, "best": "★" if best else "", "run": run.run_name or run.run_id[:8], "started": started}
    for param, column in PARAMS.items():
        value = run.params.get(param, "")
        row[column] = value.rstrip("/").rsplit("/", 1)[-1] if param == "pretrained_model" else value
    for score in SCORES:
        if score in run.metrics:
            row[score] = round(run.metrics[score], 4)
    return row


def runs_view(backend: Backend, metric):
    """(columns, rows, row styles, selected rows, compare options, compare value, status) for a metric."""
    if not metric or not METRIC_RE.fullmatch(str(metric)):
        return [], [], [], [], [], [], no_update  # the metric list's own message stays
    try:
        runs = backend.runs(metric)
    except Exception as exc:  # noqa: BLE001
        return [], [], [], [], [], [], alert(f"MLflow: {_error(exc)}", _BAD)
    if not runs:
        return [], [], [], [], [], [], alert(f"No finished run has the metric {metric!r}.", "warning")
    rows = [_row(run, i == 0) for i, run in enumerate(runs)]
    scores = [s for s in dict.fromkeys([metric, *SCORES]) if any(s in r for r in rows)]
    columns = [{"name": "", "id": "best"}, {"name": "run", "id": "run"}]
    columns += [{"name": c, "id": c} for c in PARAMS.values()]
    columns += [{"name": s, "id": s, "type": "numeric"} for s in scores]
    columns += [{"name": "started (UTC)", "id": "started"}]
    styles = [
        {"if": {"filter_query": '{best} = "★"'}, "backgroundColor": "#e7f5ec", "fontWeight": "600"},
        {"if": {"state": "selected"}, "backgroundColor": "#dbe9ff", "border": "1px solid #6ea8fe"},
        {"if": {"column_id": metric}, "fontWeight": "700"},
    ]
    compare = [{"label": r["run"], "value": r["id"]} for r in rows]
    return columns, rows, styles, [0], compare, [r["id"] for r in rows[:COMPARED]], ""


def selected_run(rows, selected_rows, metric):
    """(panel, store) for the run selected in the table; the store is what Deploy sends."""
    if not isinstance(rows, list) or not isinstance(selected_rows, list) or len(selected_rows) != 1:
        return html.Div("Select a run in the table.", className="text-body-secondary"), None
    index = selected_rows[0]
    row = rows[index] if isinstance(index, int) and 0 <= index < len(rows) and isinstance(rows[index], dict) else {}
    run_id, name = str(row.get("id", "")), str(row.get("run", ""))
    if not RUN_ID_RE.fullmatch(run_id) or not METRIC_RE.fullmatch(str(metric)):
        return html.Div("Select a run in the table.", className="text-body-secondary"), None
    best = row.get("best") == "★"
    value = row.get(metric)
    badge = dbc.Badge(f"best by {metric}", color="success") if best else dbc.Badge("not the best", color="secondary")
    panel = html.Div(
        [
            html.Div([html.Span("Run ", className="text-body-secondary"), html.B(name), " ", badge]),
            html.Div(
                f"{metric} = {value:.4f}" if isinstance(value, int | float) else f"{metric}: not logged",
                id="best-metric",
            ),
            html.Code(run_id, className="small"),
        ]
    )
    return panel, {"run_id": run_id, "metric": metric, "run_name": name}


def name_suggestion(store, current, last_suggested):
    """Suggest a name from the selected run, unless the person typed their own: that one is kept."""
    if not isinstance(store, dict) or not store.get("run_name"):
        return no_update, no_update
    if current and current != last_suggested:
        return no_update, no_update
    name = suggested_name(str(store["run_name"]))
    return name, name


def comparison(backend: Backend, run_ids, metric, options):
    if not isinstance(run_ids, list) or not run_ids:
        return figures.empty("Choose runs to compare")
    run_ids = [r for r in run_ids if isinstance(r, str) and RUN_ID_RE.fullmatch(r)][:10]
    metric = metric if isinstance(metric, str) and METRIC_RE.fullmatch(metric) else "val_f1"
    names = {o["value"]: o["label"] for o in options or [] if isinstance(o, dict) and "value" in o}
    try:
        curves = backend.histories(run_ids, metric)
        epochs = backend.histories(run_ids, "epoch")
    except Exception as exc:  # noqa: BLE001
        return figures.empty(f"MLflow: {_error(exc)}"[:80])
    return figures.run_comparison(curves, {r: str(names.get(r, r[:8])) for r in run_ids}, metric, _epoch_ends(epochs))


def _epoch_ends(epochs: dict[str, list[tuple[int, float]]]) -> dict[str, list[int]]:
    """The steps where each run finished an epoch (its `epoch` metric reached a whole number)."""
    return {
        run_id: [step for step, epoch in points if epoch >= 1 and abs(epoch - round(epoch)) < 1e-6]
        for run_id, points in epochs.items()
    }


def deploy(backend: Backend, name, store):
    """(status, inline name error, deployed event)."""
    if not is_valid_name(name):
        return "", f"Invalid name: use {NAME_RULE}.", no_update
    if not isinstance(store, dict) or not RUN_ID_RE.fullmatch(str(store.get("run_id"))):
        return alert("Select a run in the table first, so there is a run to deploy.", "warning"), "", no_update
    if not backend.deploying.acquire(blocking=False):
        return alert("Another deploy is running; this one was not started.", "warning"), "", no_update
    try:  # through the same gate as job 4: scored against the champion, staged and checked first
        result = PromotionGate(backend.registry, backend.client).run(name, run_id=store["run_id"])
    except Exception as exc:  # noqa: BLE001
        return alert(f"Deploy failed: {_error(exc)}", _BAD), "", no_update
    finally:
        backend.deploying.release()
    comparison = gate_table(result)
    if result.decision == FAILED_CHECKS:
        failed = "; ".join(f"{c.name}: {c.detail}" for c in result.checks if not c.passed)
        return alert([f"Not deployed: {result.reason} ({failed}).", comparison], _BAD), "", no_update
    if result.promotion is None and result.served is None:
        return (
            alert([f"Not deployed: the gate kept the champion: {result.reason}.", comparison], "warning"),
            "",
            no_update,
        )
    version = result.promotion.version if result.promotion else result.champion.version
    uri = f"models:/{name}@{backend.settings.model_alias}"
    run_id = result.challenger.run.run_id if result.promotion else result.champion.run.run_id
    message = f"Deployed {name}: {uri} = version {version} (run {run_id}). Gate: {result.reason}."
    return alert([message, comparison], _GOOD), "", {"name": name, "version": version}


def gate_table(result: GateResult):
    """Champion against challenger on the shared set, as the gate scored them (nothing when it scored none)."""
    if result.eval_set is None:
        return ""
    head = ["role", "version", "run", "data", result.metric, "seconds"]
    return html.Table(
        [
            html.Caption(f"scored on the same {len(result.eval_set.texts)} rows of clean/ test"),
            html.Thead(html.Tr([html.Th(h) for h in head])),
            html.Tbody([html.Tr([html.Td(str(cell)) for cell in row]) for row in result.rows()]),
        ],
        id="gate-comparison",
        className="table table-sm mt-2 mb-0",
    )


def deployed_list(backend: Backend, remove: str | None = None, keep: str | None = None):
    """(options, value, status); removes `remove` first when given; keeps `keep` selected if still deployed."""
    status = ""
    try:
        if remove is not None:
            if not is_valid_name(remove):
                return no_update, no_update, alert("Select a deployed model to remove.", "warning")
            backend.client.remove(remove)
            status = alert(f"Removed {remove}.", _GOOD)
        models = backend.client.models()
    except Exception as exc:  # noqa: BLE001
        return [], None, alert(_error(exc), _BAD)
    options = [
        {"label": f"{m['name']}  (version {m.get('version') or '-'}, run {m['run_id'][:8]})", "value": m["name"]}
        for m in models
    ]
    if not models:
        status = status or alert("No models deployed.", "secondary")
    value = keep if keep in {m["name"] for m in models} else None
    return options, value, status


_IMAGE = re.compile(r"!\[([^\]]*)\]\([^)]*\)")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")
_AUTOLINK = re.compile(r"<((?:https?|ftp|mailto|javascript|data):[^>]*)>", re.IGNORECASE)
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*\S+.*$", re.MULTILINE)
_BARE_URL = re.compile(r"(?<![`\w])((?:https?|ftp)://[^\s`|)]+)", re.IGNORECASE)  # GFM would make it a link


def inert_markdown(card: str) -> str:
    """A model card as Markdown without images or links: anyone who can write the registry writes the card, and
    MLDash must not load their images (a tracking pixel) nor offer their links. Bare URLs stay plain text."""
    card = _IMAGE.sub(lambda m: f"[image: {m.group(1)}]", card)
    card = _LINK.sub(lambda m: m.group(1), card)
    card = _AUTOLINK.sub(lambda m: m.group(1), card)
    card = _REFERENCE.sub("", card)
    return _BARE_URL.sub(lambda m: f"`{m.group(1)}`", card)


def _traffic_rows(record: dict) -> list[tuple[str, str]]:
    """The shadow's agreement so far and the canary's share, while they run."""
    rows = []
    shadow, canary = record.get("shadow"), record.get("canary")
    if shadow:
        agreement = shadow.get("agreement")
        seen = (
            f"agreement {agreement:.1%} over {shadow.get('texts', 0)} texts"
            if agreement is not None
            else "no texts yet"
        )
        rows.append(("shadow", f"{shadow['model_uri']} on {shadow['share']:.0%} of requests: {seen}"))
    if canary:
        rows.append(("canary", f"{canary['model_uri']} answers {canary['weight']:.0%} of requests"))
    return rows


def model_card(backend: Backend, name):
    if not is_valid_name(name):
        return None
    try:
        record = backend.client.model(name)
    except Exception as exc:  # noqa: BLE001
        return alert(_error(exc), _BAD)
    if record is None:
        return alert(f"{name} is no longer deployed.", "warning")
    badges = [dbc.Badge(f"version {record.get('version') or '-'}", color="primary", className="me-1")]
    badges.append(
        dbc.Badge(f"@{record['alias']}", color="info", className="me-1")
        if record.get("alias")
        else dbc.Badge("pinned", color="secondary", className="me-1")
    )
    badges.append(dbc.Badge(record.get("backend", ""), color="light", text_color="dark"))
    rows = [
        (
            "registered model",
            f"{record.get('registered_model')} version {record.get('version')}"
            + (f"@{record['alias']}" if record.get("alias") else " (pinned)"),
        ),
        ("source", record.get("model_uri", "")),
        ("run", record["run_id"]),
        ("run name", record.get("run_name") or ""),
        ("deployed at", record["deployed_at"]),
        *[(k, f"{record['metrics'][k]:.4f}") for k in CARD_METRICS if k in (record.get("metrics") or {})],
    ]
    if record.get("follow_error"):
        rows.insert(0, ("follow error", record["follow_error"]))
    rows += _traffic_rows(record)
    table = dbc.Table(
        html.Tbody(
            [html.Tr([html.Th(k, className="fw-normal text-body-secondary"), html.Td(str(v))]) for k, v in rows]
        ),
        size="sm",
        borderless=True,
        className="mb-2 small text-break",
    )
    link = backend.run_url(record.get("experiment_id") or "0", record["run_id"])
    return dbc.Card(
        dbc.CardBody(
            [
                html.H6([record["name"], " ", *badges], className="mb-2"),
                table,
                html.A("Open the run in the MLflow UI", href=link, target="_blank", className="small"),
                _confusion_matrix(backend, record["run_id"]),
                dbc.Accordion(
                    dbc.AccordionItem(
                        dcc.Markdown(
                            inert_markdown(record.get("card") or "No model card."),
                            id="model-card-markdown",
                            className="model-card-md",
                        ),
                        title="Model card",
                        item_id="card",
                    ),
                    active_item="card",
                    className="mt-2",
                ),
            ]
        ),
        id="model-card-body",
        className="border-0 bg-light",
    )


def _confusion_matrix(backend: Backend, run_id: str):
    try:
        png = backend.confusion_matrix_png(run_id)
    except Exception:  # noqa: BLE001 - the card still shows without it
        png = None
    if png is None:
        return html.Div("No confusion matrix in the run's artifacts.", className="small text-body-secondary")
    return html.Img(
        src="data:image/png;base64," + base64.b64encode(png).decode(),
        alt="Test confusion matrix",
        id="confusion-matrix",
        className="img-fluid mt-2 d-block",
        style={"maxWidth": "360px", "width": "100%"},
    )


def _outcome(entry: dict) -> tuple[str, str]:
    if entry.get("error"):
        return f"error: {entry['error']}", "text-danger"
    if entry["action"] in ("deploy", "redeploy", "follow", "restore"):
        return f"version {entry.get('version')} ({entry.get('backend', '')}, {entry.get('seconds', '?')} s)", ""
    if entry["action"] == "remove":
        return f"removed version {entry.get('version')}", ""
    return str(entry.get("status", "ok")), ""


def logs(backend: Backend):
    try:
        entries = backend.client.logs(100)
    except Exception as exc:  # noqa: BLE001
        return alert(_error(exc), _BAD)
    if not entries:
        return alert("No actions yet.", "secondary")
    entries = sorted(entries, key=lambda e: str(e.get("time", "")), reverse=True)
    body = []
    for entry in entries:
        outcome, tone = _outcome(entry)
        body.append(
            html.Tr(
                [
                    html.Td(str(entry.get("time", "")).replace("T", " ")[:19], className="text-nowrap"),
                    html.Td(entry.get("action", "")),
                    html.Td(entry.get("model", "")),
                    html.Td(outcome, className=tone),
                ]
            )
        )
    head = html.Thead(html.Tr([html.Th(h) for h in ("time (UTC)", "action", "model", "outcome")]))
    return html.Div(
        dbc.Table([head, html.Tbody(body)], size="sm", striped=True, hover=True, className="small mb-0 text-break"),
        style={"maxHeight": "260px", "overflowY": "auto"},
        id="logs-table",
    )


def predict(backend: Backend, model, text):
    """The result panel: one row per sentence with its label, its probability as a bar, and the text."""
    if not is_valid_name(model):
        return alert("Select a deployed model first (Refresh, then pick one).", "warning")
    if not isinstance(text, str):
        return alert("Type at least one sentence.", "warning")
    sentences = [line.strip() for line in text.splitlines() if line.strip()]
    if not sentences:
        return alert("Type at least one sentence.", "warning")
    if len(sentences) > MAX_SENTENCES:
        return alert(
            f"Up to {MAX_SENTENCES} sentences, one per line: you typed {len(sentences)}. Nothing was sent.", "warning"
        )
    if any(len(s) > MAX_CHARS for s in sentences):
        return alert(f"Each sentence may have up to {MAX_CHARS} characters.", "warning")
    try:
        response = backend.client.predict(model, sentences)
    except Exception as exc:  # noqa: BLE001
        return alert(f"Prediction failed: {_error(exc)}", _BAD)
    items = [_prediction(s, p) for s, p in zip(sentences, response["predictions"], strict=True)]
    version = response.get("version")
    caption = f"{model}" + (f" version {version}" if version else "") + f" (run {response['run_id'][:8]})"
    return html.Div(
        [
            html.Div(caption, className="small text-body-secondary mb-2"),
            html.Ul(items, id="predictions", className="list-unstyled"),
        ]
    )


def _prediction(sentence: str, p: dict) -> html.Li:
    positive = p["probabilities"].get("positive", 0.0)
    color = _GOOD if p["label"] == "positive" else _BAD
    return html.Li(
        [
            html.Div(
                [
                    dbc.Badge(p["label"], color=color, className=f"me-1 label-{p['label']}"),
                    " ",
                    html.Span(f"{p['score']:.1%}", className="small text-body-secondary me-1"),
                    " ",
                    html.Span(sentence, className="text-break"),
                ]
            ),
            html.Div(
                dbc.Progress(
                    value=round(positive * 100, 1),
                    color="success",
                    className="bg-danger-subtle",
                    style={"height": "8px"},
                ),
                title=f"P(positive) = {positive:.3f}",
                className="mt-1",
            ),
        ],
        className="prediction mb-2",
    )
