"""Batch scoring: a lake dataset scored by the model a registry alias names, published as `predictions/`.

The model is loaded as MLFlask loads it (the same backend, int8 choice and inference length), but with every
core. Texts are scored a batch at a time straight from the input frame; the answers are kept as numbers, so
memory beyond the input frame is one batch of texts and a few numeric columns.
"""

from __future__ import annotations

import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mlplatform.data import lake
from mlplatform.data.dataprep import INCOMING
from mlplatform.data.storage import open_storage
from mlplatform.errors import DataError
from mlplatform.registry.names import ModelRef
from mlplatform.registry.scoring import fetch_model
from mlplatform.settings import Settings, cores

log = logging.getLogger(__name__)
STAGE = "predictions"
BATCH_ROWS = 512  # texts handed to the predictor at once (it cuts them into length-sorted forward passes)


def default_split(stage: str) -> str:
    return "rows" if stage == INCOMING else "test"


@dataclass(frozen=True)
class BatchOutcome:
    manifest: dict
    rows: int
    seconds: float

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def score_dataset(
    settings: Settings,
    registry,
    alias: str | None = None,
    stage: str = "clean",
    split: str | None = None,
    batch_rows: int = BATCH_ROWS,
) -> BatchOutcome:
    """Score `stage`/`split` with models:/MODEL_NAME@`alias` (MODEL_ALIAS by default) and publish the answers."""
    from mlplatform.serving.predictor import Predictor

    split = split or default_split(stage)
    ref = ModelRef(settings.model_name, alias=alias or settings.model_alias)
    resolved = registry.resolve(ref)
    storage = open_storage(settings)
    manifest, frames = lake.read_dataset(storage, stage)
    if split not in frames:
        raise DataError(f"{storage.location}/{stage}/ has no {split!r} file (it has: {', '.join(frames)})")
    frame = frames.pop(split)
    frames.clear()  # only the scored split stays in memory
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="batch-") as tmp:
        folder = fetch_model(registry, resolved.version_uri, resolved.run_id, Path(tmp))
        predictor = Predictor(
            folder,
            quantize=settings.mlflask_quantize,
            batch_size=settings.mlflask_max_batch,
            threads=settings.torch_num_threads or cores(),
            backend=settings.serving_backend,
        )
        answers = _score(predictor, frame["text"], batch_rows, f"scoring {stage}/{split} with {ref.uri}")
    seconds = time.monotonic() - started
    output = pd.DataFrame(
        {
            "id": frame["id"].to_numpy(),
            "label": pd.Categorical.from_codes(answers["label"], predictor.labels).astype(str),
            "score": answers["score"],
            **{f"probability_{name}": answers["probabilities"][:, i] for i, name in enumerate(predictor.labels)},
            "true_label": frame["label"].to_numpy() if "label" in frame else lake.UNLABELLED,
            "tokens": answers["tokens"],
            "truncated": answers["tokens"] > predictor.max_length,
            "model": ref.name,
            "version": resolved.version,
            "run_id": resolved.run_id,
            "alias": ref.alias,
        }
    )
    published = lake.publish(
        storage,
        STAGE,
        {"predictions": output},
        source=f"{resolved.version_uri} ({ref.uri}) on {stage}/{split}",
        model_uri=ref.uri,
        model_version=resolved.version,
        run_id=resolved.run_id,
        backend=predictor.backend,
        input={"stage": stage, "split": split, "generation": manifest["generation"]},
        rows_per_second=round(len(output) / seconds, 2) if seconds else None,
    )
    return BatchOutcome(published, len(output), seconds)


def _score(predictor, texts: pd.Series, batch_rows: int, what: str) -> dict[str, np.ndarray]:
    """Labels (as indices), scores, probabilities and untruncated token counts, one batch of texts at a time."""
    from mlplatform.serving.predictor import token_counts

    count = len(texts)
    labels = np.empty(count, dtype=np.int16)
    scores = np.empty(count, dtype=np.float64)
    probabilities = np.empty((count, len(predictor.labels)), dtype=np.float64)
    tokens = np.empty(count, dtype=np.int64)
    index = {name: i for i, name in enumerate(predictor.labels)}
    with tqdm(total=count, desc=what, unit="row") as progress:
        for start in range(0, count, batch_rows):
            batch = texts.iloc[start : start + batch_rows].tolist()
            end = start + len(batch)
            for offset, answer in enumerate(predictor.predict(batch), start):
                labels[offset] = index[answer["label"]]
                scores[offset] = answer["score"]
                probabilities[offset] = [answer["probabilities"][name] for name in predictor.labels]
            tokens[start:end] = token_counts(predictor.tokenizer, batch)
            progress.update(len(batch))
    return {"label": labels, "score": scores, "probabilities": probabilities, "tokens": tokens}
