"""Scoring models on the same data: the lake's current clean/ test split, with the predictor MLFlask would use.

A run's own `val_f1` is measured on that run's own validation split; two runs trained on different data cannot
be compared by it. The promotion gate scores every contender here instead, on one fixed set of rows.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from mlplatform.data import lake
from mlplatform.data.storage import open_storage
from mlplatform.errors import ConfigError, PlatformError
from mlplatform.registry.runs import maximise
from mlplatform.settings import Settings

log = logging.getLogger(__name__)
SHARED = ("f1", "accuracy", "loss")
LABEL_IDS = {name: label for label, name in lake.LABELS.items()}


def shared_metric(deploy_metric: str) -> str:
    """The score on the shared set that stands for DEPLOY_METRIC: val_f1 -> f1, val_loss -> loss, ..."""
    for base in SHARED:
        if deploy_metric == base or deploy_metric.endswith("_" + base):
            return base
    raise ConfigError(
        f"the promotion gate compares {', '.join(SHARED)} on the shared test set; DEPLOY_METRIC={deploy_metric!r} "
        "names none of them (use val_f1, val_accuracy or val_loss, or --version to move the alias by hand)"
    )


def better(metric: str, a: float, b: float) -> float:
    """How much `a` beats `b` by in `metric` (negative when it is worse)."""
    return a - b if maximise(metric) else b - a


@dataclass(frozen=True)
class EvalSet:
    """The rows every contender is scored on, and where they came from."""

    texts: list[str]
    labels: np.ndarray
    digest: str  # the clean/ manifest's digest
    generation: str

    @property
    def name(self) -> str:
        return f"clean-test-{self.digest[:12]}"


def load_eval_set(settings: Settings) -> EvalSet:
    """clean/ test as the lake holds it now; a fixed, label-stratified sample when PROMOTION_EVAL_ROWS is smaller."""
    manifest, frames = lake.read_dataset(open_storage(settings), "clean")
    test = frames["test"]
    limit = settings.promotion_eval_rows
    if limit and len(test) > limit:
        share = limit / len(test)
        test = test.groupby("label", group_keys=False).sample(frac=share, random_state=settings.seed)
    test = test.sort_values("id")
    return EvalSet(
        test["text"].tolist(), test["label"].to_numpy(), lake.manifest_digest(manifest), manifest["generation"]
    )


def scores(predictions: list[dict], labels: np.ndarray) -> dict[str, float]:
    """f1 (of the positive class), accuracy and log loss of a predictor's answers."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    predicted = np.array([LABEL_IDS[p["label"]] for p in predictions])
    positive = np.array([p["probabilities"][lake.LABELS[1]] for p in predictions])
    return {
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "loss": float(log_loss(labels, np.clip(positive, 1e-7, 1 - 1e-7), labels=[0, 1])),
    }


def fetch_model(registry, model_uri: str, run_id: str, target: Path) -> Path:
    """The model's folder, with the ONNX export job 3 logged beside it when serving runs on ONNX."""
    folder = Path(registry.download(model_uri, target, f"fetching {model_uri}", missing=f"{model_uri} has no model"))
    if registry.settings.serving_backend == "onnx":
        try:
            registry.download(f"runs:/{run_id}/onnx", folder, "fetching the run's ONNX export", missing="no export")
        except PlatformError as exc:
            log.info("run %s has no usable ONNX export (%s); it is exported here", run_id, exc)
    return folder


@dataclass(frozen=True)
class Scored:
    scores: dict[str, float]
    backend: str
    seconds: float


def score_model(registry, model_uri: str, run_id: str, eval_set: EvalSet) -> Scored:
    """Load the model as MLFlask would (backend, int8 choice, the model's own inference length) and score it."""
    from mlplatform.serving.predictor import Predictor

    settings = registry.settings
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gate-") as tmp:
        folder = fetch_model(registry, model_uri, run_id, Path(tmp))
        predictor = Predictor(
            folder,
            quantize=settings.mlflask_quantize,
            batch_size=settings.mlflask_max_batch,
            threads=settings.torch_num_threads,
            backend=settings.serving_backend,
        )
        predictions = []
        texts = eval_set.texts
        for start in tqdm(range(0, len(texts), 256), desc=f"scoring {model_uri}", unit="batch"):
            predictions += predictor.predict(texts[start : start + 256])
    return Scored(scores(predictions, eval_set.labels), predictor.backend, time.monotonic() - started)
