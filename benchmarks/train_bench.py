"""Job 3 against a minimal plain PyTorch loop: same model, data, seed and hyperparameters, in one run.

The plain loop is AdamW with the same linear warm-up schedule and dynamic padding, shuffled batches, no
logging and no evaluation during training. Job 3's samples/s is the Trainer's own figure, which includes
its per-epoch validation pass, so the comparison is conservative for job 3. Target: ratio >= 0.95 and
test accuracy no worse.

Usage: python benchmarks/train_bench.py [--train-samples 2000] [--max-length 64] [--model PATH_OR_ID]

--accuracy (issue #25) measures quality on real sentences instead: ../shared/data/rt-polarity-dev.csv (8,000
Rotten Tomatoes sentences; 2,000 held out for test), job 3's logged model loaded with mlflow.pyfunc as users load
it, against the plain loop on the same training rows, epochs, length, batch and learning rate, over 3 seeds.
It reports mean +- standard deviation per arm, the seconds per arm, and job 3's own time split.

  python benchmarks/train_bench.py --accuracy [--seeds 1 2 3] [--train-samples 4000] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
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


REAL_SENTENCES = Path(__file__).resolve().parents[2] / "shared" / "data" / "rt-polarity-dev.csv"
TIME_PARTS = ("train", "evaluations", "test", "length_sweep", "onnx", "logging")


def _pyfunc_accuracy(run_id: str, frame) -> float:
    """Job 3's logged model, loaded as users load it, on the held-out sentences."""
    import mlflow

    model = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    labels = []
    texts = frame["text"].tolist()
    for start in range(0, len(texts), 256):
        answer = model.predict(pd.DataFrame({"text": texts[start : start + 256]}))
        labels += list(answer["label"])
    predicted = np.array([1 if label == "positive" else 0 for label in labels])
    return float((predicted == frame["label"].to_numpy()).mean())


def accuracy_mode(args) -> None:
    import mlflow

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            "LAKE_DIR": f"{tmp}/lake",
            "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp}/mlflow.db",
            "MLFLOW_DEFAULT_ARTIFACTORY_ROOT": Path(tmp, "artifacts").as_uri(),
            "MLFLOW_EXP_NAME": "train-bench-accuracy",
        }
        settings = Settings.from_mapping(env)
        mlflow.set_tracking_uri(env["MLFLOW_BACKEND_STORE_URI"])
        storage = open_storage(settings)
        prepare_raw(storage, f"csv:{REAL_SENTENCES}", SourceOptions(test_fraction=0.25, seed=0))
        clean_raw(storage)
        _, frames = lake.read_dataset(storage, "clean")
        for seed in args.seeds:
            config = TrainConfig(
                pretrained_model=args.model,
                train_samples=args.train_samples,
                test_samples=0,
                max_length=args.max_length,
                epochs=args.epochs,
                batch_size=args.batch_size,
                learning_rate=args.learning_rate,
                seed=seed,
            )
            splits = training.select_splits(frames["train"], frames["test"], config)
            started = time.perf_counter()
            job = run_finetune(settings, config, force=True)
            job_seconds = time.perf_counter() - started
            job_accuracy = _pyfunc_accuracy(job.run_id, splits.test)
            times = mlflow.get_run(job.run_id).data.metrics
            started = time.perf_counter()
            _, plain_accuracy = plain_loop(config, splits)
            plain_seconds = time.perf_counter() - started
            rows.append((seed, len(splits.train), job_accuracy, job_seconds, plain_accuracy, plain_seconds, times))
            print(
                f"seed {seed}: job 3 {job_accuracy:.4f} in {job_seconds:.0f} s, plain {plain_accuracy:.4f} in "
                f"{plain_seconds:.0f} s",
                flush=True,
            )
    job_acc, plain_acc = np.array([r[2] for r in rows]), np.array([r[4] for r in rows])
    print(
        f"\nreal sentences (rt-polarity dev): {rows[0][1]} training rows, {len(splits.test)} test rows; epochs "
        f"{args.epochs}, max_length {args.max_length}, batch {args.batch_size}, lr {args.learning_rate:g}; "
        f"seeds {', '.join(map(str, args.seeds))}"
    )
    print("| arm | test accuracy, mean ± sd | min to max | seconds per run |\n|---|---|---|---|")
    for name, accs, secs in (
        ("job 3 (logged model via mlflow.pyfunc)", job_acc, [r[3] for r in rows]),
        ("plain PyTorch loop", plain_acc, [r[5] for r in rows]),
    ):
        print(
            f"| {name} | {accs.mean():.4f} ± {accs.std(ddof=1):.4f} | {accs.min():.4f} to {accs.max():.4f} | "
            f"{np.mean(secs):.0f} |"
        )
    print(f"job 3 - plain: {100 * (job_acc.mean() - plain_acc.mean()):+.2f} points (target: >= -0.5)")
    parts = {part: np.mean([r[6].get(f"time_{part}_s", float("nan")) for r in rows]) for part in TIME_PARTS}
    print("job 3's time split (mean s): " + ", ".join(f"{k} {v:.1f}" for k, v in parts.items()))
    overhead = parts["evaluations"] + parts["test"] + parts["length_sweep"] + parts["onnx"]
    print(
        f"evaluation and export: {overhead:.1f} s = {100 * overhead / parts['train']:.0f}% of training (target < 25%)"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accuracy", action="store_true", help="quality on real sentences, 3 seeds (issue #25)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--train-samples", type=int, default=2000)
    p.add_argument("--test-samples", type=int, default=500)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--model", default=TrainConfig.model_fields["pretrained_model"].default)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.accuracy:
        if args.train_samples == 2000:
            args.train_samples = 4000  # the budget
        accuracy_mode(args)
        return
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
