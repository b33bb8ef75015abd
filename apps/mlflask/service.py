"""The prediction service behind the routes: this app's context, the answering model's micro-batcher, the
prediction log and traffic arms on the way, and readiness. The v1 routes and the V2 protocol both call it."""

from __future__ import annotations

import time

from flask import current_app, g, request

from apps.mlflask.batching import Closed, Overloaded
from apps.mlflask.errors import ApiError
from apps.mlflask.prediction_log import new_ids

RETRY_AFTER = 1
_REPLACED_RETRIES = 3  # redeploys in a row racing one request


def context():
    """This app's MLFlask context (settings, store, models, registry, traffic, log), set by `create_app`."""
    return current_app.extensions["mlflask"]


def served(name: str) -> str:
    """Mark `name` (already validated) as this request's model, for the metrics and the log."""
    g.model = name
    return name


def predict_texts(name: str, texts: list[str]):
    """(loaded model, predictions) through the model's micro-batcher; overload is a 503, never a 500.

    A canary arm may answer instead of `name` (its version is in the answer); a shadow gets a copy afterwards."""
    ctx = context()
    state = ctx.store.read_state()
    record = state.get(name) or {}
    answering = ctx.traffic.answering(name, record)
    if answering not in state:  # the arm was removed a moment ago
        answering = name
    started = time.perf_counter()
    loaded, predictions = through_batcher(answering, lambda loaded: loaded.batcher.submit(texts))
    latency_ms = (time.perf_counter() - started) * 1000
    for prediction, prediction_id in zip(predictions, new_ids(len(predictions)), strict=True):
        prediction["prediction_id"] = prediction_id
    ctx.traffic.mirror(name, record, texts, predictions)
    if ctx.prediction_log is not None:
        request_info = {
            "request_id": g.request_id,
            "endpoint": (request.endpoint or "").rpartition(".")[2],
            "model": name,
            "answered_by": answering,
            "version": str(loaded.record.get("version") or ""),
            "run_id": loaded.record.get("run_id") or "",
            "latency_ms": latency_ms,
        }
        ctx.prediction_log.record(request_info, loaded.servable, texts, predictions)
    return loaded, predictions


def through_batcher(name: str, call):
    """(loaded model, `call(loaded)`), retried on the new model if this one was replaced meanwhile."""
    try:
        for attempt in range(_REPLACED_RETRIES):
            loaded = context().models.get(name)
            try:
                return loaded, call(loaded)
            except Closed:  # replaced or removed between the lookup and the submit: the new one, or a 404
                if attempt == _REPLACED_RETRIES - 1:
                    raise
    except Overloaded as exc:
        raise ApiError(503, f"model {name!r} is busy: {exc}; retry later", retry_after=RETRY_AFTER) from None


def not_ready() -> str | None:
    """Why this worker should not take traffic yet: MLFLASK_DEPLOYMENTS not in the store, or versions it has
    not loaded. None when ready."""
    ctx = context()
    state = ctx.store.read_state()
    missing = [name for name in ctx.settings.deployments if name not in state]
    if missing:
        return f"MLFLASK_DEPLOYMENTS not served yet: {', '.join(missing)} (GET /logs says why)"
    loading = ctx.warmer.pending(state) if ctx.warmer is not None else []
    if loading:
        return f"still loading: {', '.join(loading)}"
    return None
