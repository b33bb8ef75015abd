"""The REST routes: health, models (list, get, deploy, remove, traffic), predict, MLflow's scoring protocol,
feedback, logs, metrics. Requests pass the middleware first; predictions go through the service."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
from flask import Blueprint, Response, g, jsonify, request

from apps.mlflask import deploy as deployment
from apps.mlflask import schemas, validation
from apps.mlflask.errors import ApiError
from apps.mlflask.middleware import require_feedback_token, require_token
from apps.mlflask.openapi import doc
from apps.mlflask.service import RETRY_AFTER, context, not_ready, predict_texts, served, through_batcher
from apps.mlflask.store import Busy
from apps.mlflask.traffic import ARMS, arm_name, shadow_stats
from apps.mlflask.warm import wait_everywhere
from mlplatform.data import lake
from mlplatform.errors import PlatformError
from mlplatform.monitoring import predlog
from mlplatform.names import ModelRef

bp = Blueprint("api", __name__)
_PUBLIC_FIELDS = tuple(name for name in schemas.ModelInfo.model_fields if name not in ("card", "workers"))
_LOADED_EVERYWHERE_SECONDS = 60  # how long POST /models waits for the other workers to hold the new version


def public_record(record: dict) -> dict:
    return {k: record.get(k) for k in _PUBLIC_FIELDS if k in record or k in ("alias", "follow_error")}


@bp.get("/health")
@doc("Liveness", response=schemas.Health)
def health():
    return jsonify(status="ok")


@bp.get("/ready")
@doc(
    "Readiness: 503 until this worker holds every deployed version (its first load pass done)",
    response=schemas.Ready,
    errors=(503,),
)
def ready():
    waiting = not_ready()
    if waiting:
        raise ApiError(503, waiting, retry_after=RETRY_AFTER)
    return jsonify(status="ready", models=len(context().store.read_state()))


@bp.get("/ping")
@doc("MLflow scoring protocol: liveness (empty body)")
def ping():
    return Response("\n", mimetype="text/plain")


@bp.get("/version")
@doc("MLflow scoring protocol: the MLflow version this server speaks")
def version():
    import mlflow

    return Response(mlflow.__version__, mimetype="text/plain")


@bp.get("/models")
@doc("Deployed models, newest first", response=schemas.ModelList)
def list_models():
    state = context().store.read_state()
    models = sorted(state.values(), key=lambda r: r["deployed_at"], reverse=True)
    return jsonify(models=[public_record(r) for r in models])


@bp.get("/models/<name>")
@doc(
    "One deployed model: registry reference, version, run, follow_error and model card",
    response=schemas.ModelInfo,
    errors=(404, 422),
)
def get_model(name: str):
    record = context().store.read_state().get(deployment.check_name(name))
    if record is None:
        raise ApiError(404, f"model {name!r} is not deployed")
    info = public_record(record)
    if info.get("shadow"):
        info["shadow"] = {**info["shadow"], **shadow_stats(context().metrics, name)}
    return jsonify({**info, "card": record.get("card", "")})


@bp.put("/models/<name>/traffic")
@require_token
@doc(
    "Give a served name a shadow (a share of requests also scored by another model, off the request path) or a"
    " canary (a share of requests answered by another model); null removes one, a canary weight of 0 too",
    request=schemas.TrafficRequest,
    response=schemas.ModelInfo,
    errors=(400, 401, 404, 409, 422, 503),
    auth=True,
)
def set_traffic(name: str):
    ctx = context()
    deployment.check_name(name)
    data = validation.json_body()
    body = validation.parse(schemas.TrafficRequest, data)
    if name not in ctx.store.read_state():
        raise ApiError(404, f"model {name!r} is not deployed")
    record = None
    for kind, field in ARMS.items():
        if kind not in data:
            continue
        policy = getattr(body, kind)
        arm = arm_name(name, kind)
        if policy is None or getattr(policy, field) == 0:
            record = ctx.store.set_traffic(name, kind, None)
            if arm in ctx.store.read_state():
                deployment.remove(ctx.store, ctx.models, arm)
            continue
        arm_record = deployment.deploy(ctx.registry, ctx.store, ctx.models, arm, ModelRef.parse(policy.model_uri))
        wait_everywhere(ctx.store, arm_record["deploy_id"], _LOADED_EVERYWHERE_SECONDS)
        record = ctx.store.set_traffic(name, kind, {"model_uri": policy.model_uri, field: getattr(policy, field)})
        ctx.store.log("traffic", request_id=g.request_id, model=name, kind=kind, **record[kind])
    served(name)
    return jsonify(public_record(record or ctx.store.read_state()[name]))


@bp.post("/models")
@require_token
@doc(
    "Serve a registry reference (models:/<name>@<alias> is followed, models:/<name>/<version> pinned), or promote a"
    " run (run_id) or the best FINISHED run by a metric to models:/<name>@MODEL_ALIAS and serve that alias",
    request=schemas.DeployRequest,
    response=schemas.ModelInfo,
    errors=(400, 401, 404, 409, 422, 503),
    auth=True,
)
def deploy_model():
    ctx = context()
    data = validation.json_body()
    deployment.check_name(data.get("name"))
    body = validation.parse(schemas.DeployRequest, data)
    name = served(body.name)
    if body.model_uri is not None:
        record = deployment.deploy(ctx.registry, ctx.store, ctx.models, name, ModelRef.parse(body.model_uri))
    else:  # promoted first, on job 4's path: a failed deploy moves the alias back
        try:
            with ctx.store.promotion_lock(name):
                _, record = ctx.registry.promote_then(
                    lambda promotion: deployment.deploy(ctx.registry, ctx.store, ctx.models, name, promotion.ref),
                    name,
                    rollback_on=lambda exc: getattr(exc, "status", None) != 409,  # 409: another deploy of it is running
                    run_id=body.run_id,
                    metric=body.metric,
                )
        except Busy:
            raise ApiError(409, f"a deploy or removal of {name!r} is already in progress") from None
    workers = wait_everywhere(ctx.store, record["deploy_id"], _LOADED_EVERYWHERE_SECONDS)
    return jsonify({**public_record(record), "workers": workers}), 200


@bp.delete("/models/<name>")
@require_token
@doc(
    "Stop serving a name (the registry keeps its versions)",
    response=schemas.Removed,
    errors=(401, 404, 409, 422),
    auth=True,
)
def remove_model(name: str):
    deployment.check_name(name)
    record = deployment.remove(context().store, context().models, name)
    return jsonify(removed=public_record(record))


@bp.post("/predict")
@doc(
    "Predict sentiment for texts, or the legacy {model, data: [input_ids, attention_mask]} body",
    request=schemas.PredictRequest,
    response=schemas.PredictResponse,
    errors=(400, 404, 413, 503),
)
def predict():
    ctx = context()
    body = validation.parse(schemas.PredictRequest, validation.json_body())
    name = body.model
    if body.data is not None:
        servable = ctx.models.get(name).servable
        served(name)
        ids, mask = validation.legacy_ids(
            body.data, ctx.settings.mlflask_max_texts, servable.vocab_size, servable.max_positions
        )
        # Pre-tokenised rows cannot join a text batch, but they queue, and time out, like any prediction.
        _, classes = through_batcher(
            name, lambda loaded: loaded.batcher.run_alone(lambda: loaded.servable.predict_ids(ids, mask))
        )
        return jsonify(response=str(np.array(classes)))
    texts = validation.check_texts(body.texts, ctx.settings.mlflask_max_texts)
    loaded, predictions = predict_texts(name, texts)
    served(name)
    return jsonify(
        model=name, run_id=loaded.record["run_id"], version=loaded.record.get("version"), predictions=predictions
    )


@bp.post("/invocations")
@doc(
    "MLflow scoring protocol: inputs, instances, dataframe_split, dataframe_records (JSON) or text/csv;"
    " ?model=<name>, else the newest deploy. Errors in MLflow's shape.",
    request=schemas.InvocationsRequest,
    response=schemas.InvocationsResponse,
    errors=(400, 404, 413, 503),
    query=(("model", "string", "deployed name; default: the newest deploy"),),
    csv=True,
    error_model=schemas.MlflowError,
)
def invocations():
    ctx = context()
    if request.mimetype == "text/csv":
        texts = validation.csv_texts(request.get_data())
    else:
        texts = validation.invocation_texts(validation.parse(schemas.InvocationsRequest, validation.json_body()))
    name = request.args.get("model") or ctx.models.latest()
    if not name:
        raise ApiError(404, "no model is deployed")
    _, predictions = predict_texts(
        deployment.check_name(name), validation.check_texts(texts, ctx.settings.mlflask_max_texts)
    )
    served(name)
    fields = ("label", "score", "prediction_id")
    return jsonify(predictions=[{field: p[field] for field in fields} for p in predictions])


@bp.post("/feedback")
@require_feedback_token
@doc(
    "True labels for earlier answers (by prediction_id or text_sha256), joined with the prediction log by"
    " model monitoring to measure live accuracy. Takes MLFLASK_FEEDBACK_TOKEN; each sender is recorded and"
    " limited to MLFLASK_FEEDBACK_RATE labels a minute",
    request=schemas.FeedbackRequest,
    response=schemas.FeedbackAccepted,
    errors=(400, 401, 403, 413, 429, 503),
    auth=True,
)
def feedback():
    ctx = context()
    if ctx.prediction_log is None:
        raise ApiError(503, "the prediction log is off (MLFLASK_PREDICTION_LOG=0), so feedback has nothing to join")
    items = validation.parse(schemas.FeedbackRequest, validation.json_body()).feedback
    unknown = sorted({item.label for item in items} - set(lake.LABELS.values()))
    if unknown:
        raise ApiError(400, f"unknown label(s) {unknown}; expected one of {sorted(lake.LABELS.values())}")
    sender = _sender()
    wait = ctx.feedback_limit.take(sender, len(items))
    if wait:
        raise ApiError(429, f"too much feedback from {sender}; retry later", retry_after=int(wait) + 1)
    now = datetime.now(UTC)
    records = [
        {
            "time": now,
            "prediction_id": i.prediction_id,
            "text_sha256": i.text_sha256,
            "true_label": i.label,
            "sender": sender,
            "request_id": g.request_id,
        }
        for i in items
    ]
    try:
        predlog.write(ctx.prediction_log.storage, predlog.FEEDBACK_STAGE, records, g.request_id)
    except (PlatformError, OSError) as exc:
        raise ApiError(503, f"feedback not stored, retry later: {exc}", retry_after=RETRY_AFTER) from None
    return jsonify(accepted=len(records))


def _sender() -> str:
    """The client: the first X-Forwarded-For hop behind a proxy MLFlask trusts (compose's front), else the peer."""
    forwarded = request.headers.get("X-Forwarded-For", "") if context().settings.mlflask_behind_proxy else ""
    return (forwarded.split(",")[0].strip() or request.remote_addr or "unknown")[:64]


@bp.get("/logs")
@doc(
    "Action history and failed requests, newest first",
    response=schemas.Logs,
    errors=(400,),
    query=(
        ("limit", "integer", "1 to 5000, default 200"),
        ("failed_requests", "string", "0 = deploys, removals and follows only"),
    ),
)
def logs():
    limit = validation.limit(request.args.get("limit"))
    return jsonify(logs=context().store.logs(limit, failed_requests=request.args.get("failed_requests") != "0"))


@bp.get("/metrics")
@doc("Prometheus metrics, summed over the workers")
def metrics():
    body, content_type = context().metrics.render()
    return Response(body, content_type=content_type)
