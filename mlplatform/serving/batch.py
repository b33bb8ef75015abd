"""Batch scoring: a lake dataset scored by the model a registry alias names, published as `predictions/`.

The servable is loaded by the loader MLFlask uses (the same backend, int8 choice and thread policy). Texts are
scored a batch at a time straight from the input frame; the answers are kept as numbers, so memory beyond the
input frame is one batch of texts and a few numeric columns.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from mlplatform.data import lake
from mlplatform.data.dataprep import INCOMING
from mlplatform.data.storage import open_storage
from mlplatform.errors import DataError
from mlplatform.names import ModelRef
from mlplatform.serving.loader import load_servable
from mlplatform.settings import Settings

log = logging.getLogger(__name__)
STAGE = "predictions"
BATCH_ROWS = 512  # texts handed to the servable at once (it cuts them into length-sorted forward passes)


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
    servable = load_servable(resolved.version_uri, settings)
    answers = _score(servable, frame["text"], batch_rows, f"scoring {stage}/{split} with {ref.uri}")
    seconds = time.monotonic() - started
    output = pd.DataFrame(
        {
            "id": frame["id"].to_numpy(),
            "label": pd.Categorical.from_codes(answers["label"], servable.labels).astype(str),
            "score": answers["score"],
            **{f"probability_{name}": answers["probabilities"][:, i] for i, name in enumerate(servable.labels)},
            "true_label": frame["label"].to_numpy() if "label" in frame else lake.UNLABELLED,
            "tokens": answers["tokens"],
            "truncated": answers["tokens"] > servable.max_length,
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
        backend=servable.backend,
        input={"stage": stage, "split": split, "generation": manifest["generation"]},
        rows_per_second=round(len(output) / seconds, 2) if seconds else None,
    )
    return BatchOutcome(published, len(output), seconds)


def _score(servable, texts: pd.Series, batch_rows: int, what: str) -> dict[str, np.ndarray]:
    """Labels (as indices), scores, probabilities and untruncated token counts, one batch of texts at a time."""
    count = len(texts)
    probabilities = np.empty((count, len(servable.labels)), dtype=np.float64)
    tokens = np.empty(count, dtype=np.int64)
    with tqdm(total=count, desc=what, unit="row") as progress:
        for start in range(0, count, batch_rows):
            batch = texts.iloc[start : start + batch_rows].tolist()
            end = start + len(batch)
            probabilities[start:end] = servable.probabilities(batch)
            tokens[start:end] = servable.count_tokens(batch)
            progress.update(len(batch))
    labels = probabilities.argmax(axis=1).astype(np.int16) if count else np.empty(0, dtype=np.int16)
    return {
        "label": labels,
        "score": probabilities.max(axis=1, initial=0.0),
        "probabilities": probabilities,
        "tokens": tokens,
    }
