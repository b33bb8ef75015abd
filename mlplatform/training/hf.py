"""Fine-tuning with the Hugging Face Trainer: data selection, tokenisation, metrics, device choice."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from mlplatform.data.lake import LABELS
from mlplatform.errors import DataError
from mlplatform.training.config import TrainConfig

log = logging.getLogger(__name__)
ID2LABEL = dict(LABELS)
LABEL2ID = {name: i for i, name in LABELS.items()}


@dataclass
class Splits:
    train: pd.DataFrame
    val: pd.DataFrame
    test: pd.DataFrame

    @property
    def sizes(self) -> dict[str, int]:
        return {"train_size": len(self.train), "val_size": len(self.val), "test_size": len(self.test)}


def _cap(frame: pd.DataFrame, cap: int, seed: int) -> pd.DataFrame:
    if not cap or len(frame) <= cap:
        return frame
    kept, _ = train_test_split(frame, train_size=cap, random_state=seed, stratify=frame["label"])
    return kept


def select_splits(train: pd.DataFrame, test: pd.DataFrame, config: TrainConfig) -> Splits:
    """Hold out a seeded stratified validation set from train first, then cap the rows: TRAIN_SAMPLES counts
    the rows trained on, and the validation rows (VAL_FRACTION of that) come on top of them."""
    for name, frame in (("train", train), ("test", test)):
        if frame.empty:
            raise DataError(f"clean/{name} has no rows: nothing to train or evaluate on")
        if frame["label"].nunique() < 2 or frame["label"].value_counts().min() < 2:
            counts = frame["label"].value_counts().to_dict()
            raise DataError(f"clean/{name} needs at least 2 rows of each label, has {counts}")
    test = _cap(test, config.test_samples, config.seed)
    wanted = config.train_samples or len(train)
    val_rows = min(max(2, round(config.val_fraction * wanted)), len(train) - 2)
    try:
        fit, val = train_test_split(train, test_size=val_rows, random_state=config.seed, stratify=train["label"])
    except ValueError as exc:
        raise DataError(
            f"cannot hold out VAL_FRACTION={config.val_fraction} of {len(train)} train rows: {exc}"
        ) from None
    fit = _cap(fit, config.train_samples, config.seed)
    if config.train_samples and len(fit) < config.train_samples:
        log.info("clean/ train has %d rows: %d to train on, %d to validate", len(train), len(fit), len(val))
    return Splits(fit.reset_index(drop=True), val.reset_index(drop=True), test.reset_index(drop=True))


def classification_metrics(labels: np.ndarray, predictions: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1": float(f1_score(labels, predictions, average="binary", pos_label=1, zero_division=0)),
    }


def precision_flags() -> dict[str, bool]:
    """bf16 on CUDA where the GPU supports it, else fp16 on CUDA; full precision on MPS and CPU."""
    import torch

    if torch.cuda.is_available():
        bf16 = torch.cuda.is_bf16_supported()
        return {"bf16": bf16, "fp16": not bf16}
    return {"bf16": False, "fp16": False}


def device_name() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.device_count()}x {torch.cuda.get_device_name(0)})"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_model(source: str, num_labels: int = 2):
    """Tokenizer and a sequence-classification model with the negative/positive head."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if Path(source).is_dir():
        # An absolute path cannot be mistaken for a hub id, so MLflow never tries to fetch a model card
        # for it over the network (which stalls for most of a minute on an offline machine).
        source = str(Path(source).resolve())
    try:
        tokenizer = AutoTokenizer.from_pretrained(source)
        # safetensors only: a pickled checkpoint (pytorch_model.bin) can run code when it is loaded
        model = AutoModelForSequenceClassification.from_pretrained(
            source, num_labels=num_labels, id2label=ID2LABEL, label2id=LABEL2ID, use_safetensors=True
        )
    except OSError as exc:
        raise DataError(f"cannot load PRETRAINED_MODEL {source!r}: {str(exc).splitlines()[0]}") from None
    return tokenizer, model


def tokenize(frame: pd.DataFrame, tokenizer, max_length: int):
    """A datasets.Dataset of unpadded token ids: padding happens per batch, in the collator."""
    import datasets

    dataset = datasets.Dataset.from_dict({"text": frame["text"].tolist(), "labels": frame["label"].tolist()})
    return dataset.map(
        lambda batch: tokenizer(batch["text"], truncation=True, max_length=max_length),
        batched=True,
        remove_columns=["text"],
        desc="tokenize",
    )


@dataclass
class History:
    """What the UI and the plots show: train loss by step, validation scores by epoch."""

    train_loss: list[tuple[int, float]] = field(default_factory=list)
    val: list[dict] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)  # job 3's time split: train, evaluations, test, ...

    def add_time(self, part: str, seconds: float) -> None:
        self.seconds[part] = self.seconds.get(part, 0.0) + seconds
