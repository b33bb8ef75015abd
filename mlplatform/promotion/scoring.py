"""Scoring models on the same data: the lake's current clean/ test split, loaded as MLFlask loads them.

A run's own `val_f1` is measured on that run's own validation split; two runs trained on different data cannot
be compared by it. The promotion gate scores every contender here instead, on one fixed set of rows.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from mlplatform.data import lake
from mlplatform.data.storage import open_storage
from mlplatform.errors import ConfigError
from mlplatform.registry.runs import maximise
from mlplatform.serving.loader import load_servable
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
    """f1 (of the positive class), accuracy and log loss of a servable's answers."""
    from sklearn.metrics import accuracy_score, f1_score, log_loss

    predicted = np.array([LABEL_IDS[p["label"]] for p in predictions])
    positive = np.array([p["probabilities"][lake.LABELS[1]] for p in predictions])
    return {
        "f1": float(f1_score(labels, predicted, zero_division=0)),
        "accuracy": float(accuracy_score(labels, predicted)),
        "loss": float(log_loss(labels, np.clip(positive, 1e-7, 1 - 1e-7), labels=[0, 1])),
    }


@dataclass(frozen=True)
class Scored:
    scores: dict[str, float]
    backend: str
    seconds: float


def score_model(registry, model_uri: str, eval_set: EvalSet) -> Scored:
    """Load the servable through the loader MLFlask uses (same backend, int8 choice, threads) and score it."""
    started = time.monotonic()
    servable = load_servable(model_uri, registry.settings)
    predictions = []
    texts = eval_set.texts
    for start in tqdm(range(0, len(texts), 256), desc=f"scoring {model_uri}", unit="batch"):
        predictions += servable.predict(texts[start : start + 256])
    return Scored(scores(predictions, eval_set.labels), servable.backend, time.monotonic() - started)
