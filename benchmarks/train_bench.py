"""Job 3 against a minimal plain PyTorch loop: same model, data, seed and hyperparameters, in one run.

The plain loop is AdamW with the same linear warm-up schedule and dynamic padding, shuffled batches, no
logging and no evaluation during training. Job 3's samples/s is the Trainer's own figure, which includes
its per-epoch validation pass, so the comparison is conservative for job 3. Target: ratio >= 0.95 and
test accuracy no worse.

Usage: python benchmarks/train_bench.py [--train-samples 2000] [--max-length 64] [--model PATH_OR_ID]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from mlplatform.data import lake
from mlplatform.data.dataprep import clean_raw, prepare_raw
from mlplatform.data.sources import SourceOptions
from mlplatform.data.storage import open_storage
from mlplatform.settings import Settings
from mlplatform.training import hf as training
from mlplatform.training.config import TrainConfig
from mlplatform.training.finetune import run_finetune
from mlplatform.training.pretrained import resolve_pretrained


def plain_loop(config: TrainConfig, splits: training.Splits) -> tuple[float, float]:
    """Train with a bare loop; return (train samples/s, test accuracy)."""
    from transformers import DataCollatorWithPadding, get_linear_schedule_with_warmup, set_seed

    set_seed(config.seed)
    tokenizer, model = training.load_model(resolve_pretrained(config.pretrained_model))
    collate = DataCollatorWithPadding(tokenizer)
    train = training.tokenize(splits.train, tokenizer, config.max_length)
    test = training.tokenize(splits.test, tokenizer, config.max_length)
    loader = DataLoader(train, batch_size=config.batch_size, shuffle=True, collate_fn=collate)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    total = len(loader) * config.epochs
    schedule = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total), total)
    model.train()
    start = time.perf_counter()
    for _ in range(config.epochs):
        for batch in loader:
            loss = model(**batch).loss
            loss.backward()
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
    elapsed = time.perf_counter() - start
    model.eval()
    predictions = []
    with torch.inference_mode():
        for batch in DataLoader(test, batch_size=config.batch_size * 2, collate_fn=collate):
            batch.pop("labels")
            predictions += model(**batch).logits.argmax(-1).tolist()
    accuracy = float(np.mean(np.array(predictions) == splits.test["label"].to_numpy()))
    return len(splits.train) * config.epochs / elapsed, accuracy


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-samples", type=int, default=2000)
    p.add_argument("--test-samples", type=int, default=500)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--model", default=TrainConfig.model_fields["pretrained_model"].default)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    config = TrainConfig(
        pretrained_model=args.model,
        train_samples=args.train_samples,
        test_samples=args.test_samples,
        max_length=args.max_length,
        epochs=args.epochs,
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "LAKE_DIR": f"{tmp}/lake",
            "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp}/mlflow.db",
            "MLFLOW_DEFAULT_ARTIFACTORY_ROOT": Path(tmp, "artifacts").as_uri(),
            "MLFLOW_EXP_NAME": "train-bench",
        }
        settings = Settings.from_mapping(env)
        storage = open_storage(settings)
        total = int((args.train_samples / (1 - config.val_fraction) + args.test_samples) * 1.3)
        prepare_raw(storage, f"sample:{total}", SourceOptions(seed=1))
        clean_raw(storage)
        _, frames = lake.read_dataset(storage, "clean")
        splits = training.select_splits(frames["train"], frames["test"], config)

        job = run_finetune(settings, config)
        plain_speed, plain_accuracy = plain_loop(config, splits)

    job_speed = job.samples_per_second
    print(
        f"model: {args.model}  train rows: {len(splits.train)}  test rows: {len(splits.test)}  "
        f"max_length: {config.max_length}  batch: {config.batch_size}  epochs: {config.epochs}"
    )
    print(f"{'':22}{'samples/s':>10}{'test acc':>10}")
    print(f"{'job 3 (Trainer+MLflow)':22}{job_speed:>10.1f}{job.metrics['test_accuracy']:>10.3f}")
    print(f"{'plain PyTorch loop':22}{plain_speed:>10.1f}{plain_accuracy:>10.3f}")
    print(f"ratio job/plain samples/s: {job_speed / plain_speed:.2f}  (target >= 0.95)")
    print(f"accuracy difference job-plain: {job.metrics['test_accuracy'] - plain_accuracy:+.3f}  (target >= 0)")


if __name__ == "__main__":
    main()
