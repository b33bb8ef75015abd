"""When to retrain: the latest monitoring window drifted past DRIFT_THRESHOLD, or raw/ holds at least
RETRAIN_MIN_NEW_ROWS labelled rows the champion was not trained on. Read-only: the sensor acts on the answer."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass

import pandas as pd

from mlplatform.data import lake
from mlplatform.data.storage import Storage
from mlplatform.errors import PlatformError
from mlplatform.monitoring.history import windows
from mlplatform.names import ModelRef
from mlplatform.registry.tracking import NotInTracking
from mlplatform.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reason:
    kind: str  # drift | new_data
    key: str  # what was acted on: a monitoring run id, or a raw/ generation
    detail: str

    @property
    def tags(self) -> dict[str, str]:
        return {"retrain_reason": self.kind, "retrain_detail": self.detail[:400], "retrain_key": self.key}


def drift_reason(settings: Settings, registry) -> Reason | None:
    """The latest monitoring window of MODEL_NAME, if it drifted past DRIFT_THRESHOLD."""
    latest = windows(registry, settings.mlflow_exp_name, settings.model_name, limit=1)
    score = latest[0].metrics.get("drift_score") if latest else None
    if score is None or score <= settings.drift_threshold:
        return None
    window = latest[0]
    detail = (
        f"drift_score {score:.3f} > DRIFT_THRESHOLD {settings.drift_threshold:g} in the window ending "
        f"{window.end.isoformat(timespec='minutes')} (v{window.version}: {'; '.join(window.alerts)})"
    )
    return Reason("drift", window.run_id, detail)


def new_rows_reason(settings: Settings, registry, storage: Storage) -> Reason | None:
    """raw/'s labelled train rows that the champion's training generation of clean/ does not hold."""
    raw = lake.read_manifest(storage, "raw")
    if raw is None:
        return None
    trained = _trained_ids(settings, registry, storage)
    if trained is None:
        return None
    ids = _ids(storage, raw["files"]["train"]["key"])
    new = len(set(ids) - trained)
    if new < settings.retrain_min_new_rows:
        return None
    detail = (
        f"{new} labelled raw/ train rows (generation {raw['generation']}) the champion was not trained on "
        f">= RETRAIN_MIN_NEW_ROWS {settings.retrain_min_new_rows}"
    )
    return Reason("new_data", raw["generation"], detail)


def _trained_ids(settings: Settings, registry, storage: Storage) -> set[str] | None:
    try:
        champion = registry.resolve(ModelRef(settings.model_name, alias=settings.model_alias))
        generation = registry.client.get_run(champion.run_id).data.tags.get("dataset_generation")
    except NotInTracking:
        return None  # no champion yet: the first training is the pipeline's, not this sensor's
    try:
        manifest, _ = _manifest_of(storage, generation)
    except PlatformError as exc:
        log.warning("the champion's training data (clean/ %s) is not readable: %s", generation, exc)
        return None
    return set(_ids(storage, manifest["files"]["train"]["key"]))


def _manifest_of(storage: Storage, generation: str | None):
    key = f"clean/{generation}/{lake.MANIFEST}" if generation else f"clean/{lake.MANIFEST}"
    raw = storage.get(key)
    if raw is None:
        raise PlatformError(f"{storage.location}/{key} is gone")
    return json.loads(raw), key


def _ids(storage: Storage, key: str) -> list[str]:
    data = storage.get(key)
    if data is None:
        raise PlatformError(f"{storage.location}/{key} is gone")
    return pd.read_parquet(io.BytesIO(data), columns=["id"])["id"].astype(str).tolist()
