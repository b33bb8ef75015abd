"""Deploying a run from the configured MLflow into the store, and removing it. Nothing else is a source."""

from __future__ import annotations

import logging
import shutil
import uuid

from apps.mlflask.errors import ApiError
from apps.mlflask.loaded import LoadedModels
from apps.mlflask.store import Busy, ModelStore, now
from mlplatform import runs
from mlplatform.names import NAME_RULE, is_valid_name
from mlplatform.settings import Settings
from mlplatform.tracking import TrackingUnavailable

log = logging.getLogger(__name__)
_KEY_PARAMS = ("pretrained_model", "learning_rate", "epochs", "batch_size", "max_length", "train_size")


def check_name(name) -> str:
    if not is_valid_name(name):
        raise ApiError(422, f"model name must be {NAME_RULE}")
    return name


def _download(settings: Settings, model_uri: str, target) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow.artifacts.download_artifacts(artifact_uri=model_uri, dst_path=str(target))
    except MlflowException as exc:
        raise ApiError(404, f"cannot fetch {model_uri} from MLflow: {exc.message[:200]}") from None
    except OSError as exc:
        raise TrackingUnavailable(f"cannot fetch {model_uri}: {exc}") from None


def deploy(
    settings: Settings,
    store: ModelStore,
    models: LoadedModels,
    name: str,
    run_id: str | None = None,
    metric: str | None = None,
) -> dict:
    """Resolve the run, download and verify its model, then switch `name` to it in one atomic step.

    Any failure before the switch leaves the deployed set exactly as it was.
    """
    check_name(name)
    try:
        with store.name_lock(name):
            summary = runs.get_run(settings, run_id, metric) if run_id else runs.best_run(settings, metric)
            staged = store.new_staging()
            try:
                _download(settings, summary.model_uri, staged)
                model_dir = next((p for p in staged.iterdir() if (p / "MLmodel").is_file()), staged)
                try:
                    predictor = models.load_dir(model_dir)
                    predictor.predict(["smoke test"])
                except (OSError, ValueError, KeyError) as exc:
                    raise ApiError(
                        422, f"run {summary.run_id} has no loadable text-classification model: {exc}"
                    ) from None
                record = {
                    "name": name,
                    "run_id": summary.run_id,
                    "run_name": summary.run_name,
                    "model_uri": summary.model_uri,
                    "experiment": settings.mlflow_exp_name,
                    "experiment_id": summary.experiment_id,
                    "metric": metric,
                    "metric_value": summary.metric_value,
                    "params": {k: summary.params[k] for k in _KEY_PARAMS if k in summary.params},
                    "deployed_at": now(),
                    "deploy_id": uuid.uuid4().hex,
                    "quantized": predictor.quantized,
                }
                previous = store.install(name, record, model_dir)
            finally:
                shutil.rmtree(staged, ignore_errors=True)
    except Busy:
        raise ApiError(409, f"a deploy or removal of {name!r} is already in progress") from None
    models.adopt(record, predictor)
    store.log(
        "deploy",
        model=name,
        run_id=record["run_id"],
        metric=metric,
        metric_value=record["metric_value"],
        replaced_run_id=(previous or {}).get("run_id"),
    )
    log.info("deployed %s: run %s", name, record["run_id"])
    return record


def remove(store: ModelStore, name: str) -> dict:
    check_name(name)
    try:
        with store.name_lock(name):
            record = store.remove(name)
    except Busy:
        raise ApiError(409, f"a deploy or removal of {name!r} is already in progress") from None
    if record is None:
        raise ApiError(404, f"model {name!r} is not deployed")
    store.log("remove", model=name, run_id=record["run_id"])
    return record
