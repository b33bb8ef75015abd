"""The REST API: health, models (list, deploy, remove), predict, invocations, logs, metrics, openapi."""

from __future__ import annotations

import hmac
import time
from functools import wraps

import numpy as np
from flask import Blueprint, Response, current_app, g, jsonify, request

from apps.mlflask import deploy as deployment
from apps.mlflask import validation
from apps.mlflask.errors import ApiError
from apps.mlflask.openapi import SPEC
from mlplatform.promotion import ModelRef, promote

bp = Blueprint("api", __name__)
_PUBLIC_FIELDS = (
    "name",
    "model_uri",
    "registered_model",
    "version",
    "alias",
    "run_id",
    "run_name",
    "experiment_id",
    "metrics",
    "params",
    "tags",
    "deployed_at",
    "quantized",
    "follow_error",
)


def _ctx():
    return current_app.extensions["mlflask"]


def _public(record: dict) -> dict:
    return {k: record.get(k) for k in _PUBLIC_FIELDS}


def require_token(view):
    """When MLFLASK_TOKEN is set, changing the deployed set needs `Authorization: Bearer <token>`."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        token = _ctx().settings.mlflask_token
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                raise ApiError(401, "missing or invalid bearer token")
        return view(*args, **kwargs)

    return wrapper


@bp.before_app_request
def _start_timer():
    g.started = time.perf_counter()
    g.model = ""


@bp.after_app_request
def _record(response):
    ctx = _ctx()
    endpoint = (request.endpoint or "unknown").removeprefix("api.")
    ctx.metrics.observe(
        endpoint, g.get("model", ""), response.status_code, time.perf_counter() - g.get("started", time.perf_counter())
    )
    if response.status_code >= 400 and endpoint not in ("metrics", "unknown"):
        error = (response.get_json(silent=True) or {}).get("error", "")
        ctx.store.log(
            "failed_request",
            endpoint=endpoint,
            status=response.status_code,
            model=g.get("model", ""),
            error=error[:300],
        )
    return response


@bp.get("/health")
def health():
    return jsonify(status="ok")


@bp.get("/ready")
def ready():
    ctx = _ctx()
    state = ctx.store.read_state()
    return jsonify(status="ready", models=len(state))


@bp.get("/models")
def list_models():
    state = _ctx().store.read_state()
    models = sorted(state.values(), key=lambda r: r["deployed_at"], reverse=True)
    return jsonify(models=[_public(r) for r in models])


@bp.get("/models/<name>")
def get_model(name: str):
    record = _ctx().store.read_state().get(deployment.check_name(name))
    if record is None:
        raise ApiError(404, f"model {name!r} is not deployed")
    return jsonify({**_public(record), "card": record.get("card", "")})


@bp.post("/models")
@require_token
def deploy_model():
    """`{"name", "model_uri"}` serves a registry reference; `{"name", "run_id"}` / `{"name", "metric"}` promote
    that run (or the best by the metric) to `models:/<name>@MODEL_ALIAS` first, then serve the alias."""
    ctx = _ctx()
    body = validation.json_body()
    name = deployment.check_name(body.get("name"))
    g.model = name
    model_uri, run_id, metric = body.get("model_uri"), body.get("run_id"), body.get("metric")
    for field, value in (("model_uri", model_uri), ("run_id", run_id), ("metric", metric)):
        if value is not None and (not isinstance(value, str) or not value):
            raise ApiError(400, f"'{field}' must be a non-empty string")
    if model_uri is not None:
        if run_id is not None or metric is not None:
            raise ApiError(400, "give either 'model_uri', or 'run_id' / 'metric', not both")
        ref = ModelRef.parse(model_uri)
    elif run_id is None and metric is None:
        raise ApiError(400, "give 'model_uri' (a registry reference), 'run_id' (that run) or 'metric' (the best run)")
    else:
        ref = promote(ctx.settings, name, run_id=run_id, metric=metric).ref
    record = deployment.deploy(ctx.settings, ctx.store, ctx.models, name, ref)
    return jsonify(_public(record)), 200


@bp.delete("/models/<name>")
@require_token
def remove_model(name: str):
    g.model = name
    record = deployment.remove(_ctx().store, name)
    return jsonify(removed=_public(record))


def _predict(name: str, texts: list[str]):
    loaded = _ctx().models.get(name)
    return loaded, loaded.batcher.submit(texts)


@bp.post("/predict")
def predict():
    ctx = _ctx()
    body = validation.json_body()
    name = validation.model_name(body.get("model"))
    g.model = name
    if "data" in body and "texts" not in body:
        loaded = ctx.models.get(name)
        ids, mask = validation.legacy_ids(body["data"], ctx.settings.mlflask_max_texts, loaded.predictor.vocab_size)
        return jsonify(response=str(np.array(loaded.predictor.predict_ids(ids, mask))))
    texts = validation.texts(body.get("texts"), ctx.settings.mlflask_max_texts)
    loaded, predictions = _predict(name, texts)
    return jsonify(model=name, run_id=loaded.record["run_id"], predictions=predictions)


@bp.post("/invocations")
def invocations():
    ctx = _ctx()
    body = validation.json_body()
    name = request.args.get("model") or ctx.models.latest()
    if not name:
        raise ApiError(404, "no model is deployed")
    g.model = name
    texts = validation.invocation_texts(body, ctx.settings.mlflask_max_texts)
    _, predictions = _predict(name, texts)
    return jsonify(predictions=[{"label": p["label"], "score": p["score"]} for p in predictions])


@bp.get("/logs")
def logs():
    limit = request.args.get("limit", "200")
    if not limit.isdigit() or not 1 <= int(limit) <= 5000:
        raise ApiError(400, "'limit' must be a whole number from 1 to 5000")
    return jsonify(logs=_ctx().store.logs(int(limit)))


@bp.get("/metrics")
def metrics():
    return Response(_ctx().metrics.render(), mimetype="text/plain; version=0.0.4")


@bp.get("/openapi.json")
def openapi():
    return jsonify(SPEC)
