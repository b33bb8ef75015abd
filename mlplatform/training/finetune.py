"""Job 3 as a function: fine-tune on the lake's `clean/` data inside one MLflow run."""

from __future__ import annotations

import logging
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlplatform.data import lake
from mlplatform.data.storage import open_storage
from mlplatform.registry import Registry
from mlplatform.settings import Settings
from mlplatform.training import artifacts, distributed, plots
from mlplatform.training import hf as training
from mlplatform.training.config import TrainConfig
from mlplatform.training.pretrained import resolve_pretrained

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FinetuneResult:
    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    samples_per_second: float
    skipped: bool = False
    pruned: bool = False  # a sweep's trial stopped early by its pruner


def git_commit(settings: Settings) -> str | None:
    """The checkout's commit, or GIT_COMMIT where the code is no git checkout (a Docker image)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return settings.git_commit
    return out.stdout.strip() or settings.git_commit


def _metrics_callback(history: training.History, reporter=None):
    """Log with the metric names the UI compares runs on, all by global step: train_loss, val_*."""
    import mlflow
    from transformers import TrainerCallback

    class MlflowMetrics(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs and state.is_world_process_zero:
                history.train_loss.append((state.global_step, float(logs["loss"])))
                mlflow.log_metric("train_loss", float(logs["loss"]), step=state.global_step)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            if not metrics or not state.is_world_process_zero:
                return
            history.add_time("evaluations", float(metrics.get("eval_runtime", 0.0)))
            row = {
                "step": state.global_step,
                "epoch": float(state.epoch or 0),
                "val_loss": metrics["eval_loss"],
                "val_accuracy": metrics["eval_accuracy"],
                "val_f1": metrics["eval_f1"],
            }
            if history.val and history.val[-1]["step"] == row["step"]:
                return  # the Trainer evaluates again at the very end; the curve has that point already
            history.val.append(row)
            values = {k: float(v) for k, v in row.items() if k != "step"}
            mlflow.log_metrics(values, step=state.global_step)
            if reporter is not None and reporter.report(state.global_step, values):
                control.should_training_stop = True  # pruned: the sweep's pruner gave up on this trial

    return MlflowMetrics()


def _compute_metrics(prediction) -> dict[str, float]:
    return training.classification_metrics(prediction.label_ids, np.argmax(prediction.predictions, axis=-1))


def _train(
    config: TrainConfig,
    datasets: dict,
    tokenizer,
    model,
    history: training.History,
    steps_per_epoch: int,
    main_process: bool,
    parallel: dict | None = None,
    reporter=None,
):
    """Fine-tune with the HF Trainer (shuffled or length-grouped batches, dynamic padding); return (output, test
    prediction, trained model, accuracy by length); the prediction is None when a sweep's pruner stopped the run."""
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    ProgressCallback, _QuietProgress = _quiet_progress_class()

    with tempfile.TemporaryDirectory() as output_dir:
        args = TrainingArguments(
            output_dir=output_dir,
            learning_rate=config.learning_rate,
            num_train_epochs=config.epochs,
            per_device_train_batch_size=config.batch_size,
            per_device_eval_batch_size=config.batch_size * 2,
            weight_decay=config.weight_decay,
            warmup_steps=config.warmup_ratio,
            max_grad_norm=config.max_grad_norm,
            seed=config.seed,
            eval_strategy="steps",
            eval_steps=max(1, steps_per_epoch // config.evals_per_epoch),
            save_strategy="no",
            logging_strategy="steps",
            logging_steps=max(1, steps_per_epoch // 20),
            train_sampling_strategy="group_by_length" if config.group_by_length else "random",
            report_to="none",
            disable_tqdm=False,
            dataloader_pin_memory=torch.cuda.is_available(),
            **training.precision_flags(),
            **(parallel or {}),
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=datasets["train"],
            eval_dataset=datasets["val"],
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=_compute_metrics,
            callbacks=[_metrics_callback(history, reporter)] if main_process else [],
        )
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(_QuietProgress)  # bars, without the raw log dicts printed between them
        with _timed(history, "train"):
            output = trainer.train()
        history.seconds["train"] -= history.seconds.get("evaluations", 0.0)  # the validation passes, counted apart
        if reporter is not None and reporter.pruned:
            return output, None, trainer.model, None
        with _timed(history, "test"):
            prediction = trainer.predict(datasets["test"])
        with _timed(history, "length_sweep"):
            by_length = _accuracy_by_length(
                trainer, tokenizer, datasets["test_frame"], datasets["lengths"], prediction, datasets["test_length"]
            )
    return output, prediction, trainer.model, by_length


def _report_times(seconds: dict[str, float]) -> None:
    """Print and log where job 3's time went (metrics time_<part>_s)."""
    import mlflow

    mlflow.log_metrics({f"time_{part}_s": round(value, 2) for part, value in seconds.items()})
    train = seconds.get("train", 0.0)
    overhead = sum(seconds.get(part, 0.0) for part in ("evaluations", "test", "length_sweep", "onnx"))
    split = ", ".join(f"{part} {value:.1f} s" for part, value in seconds.items())
    share = f" ({100 * overhead / train:.0f}% of training)" if train else ""
    log.info("time split: %s; evaluation and export %.1f s%s", split, overhead, share)


@contextmanager
def _timed(history: training.History, part: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        history.add_time(part, time.perf_counter() - started)


def _quiet_progress_class():
    from transformers.trainer_callback import ProgressCallback

    class QuietProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    return ProgressCallback, QuietProgress


def _accuracy_by_length(trainer, tokenizer, frame, lengths: list[int], test_prediction, test_length: int):
    """Test accuracy at each inference length (on up to 500 test rows): the speed/accuracy trade-off.

    Only lengths that cut some text are predicted again: at the test split's own length the test prediction
    answers, and past the longest text every length gives what the first one past it gave."""
    import pandas as pd

    sample = frame.head(500)
    longest = max(len(ids) for ids in tokenizer(sample["text"].tolist(), truncation=False, verbose=False)["input_ids"])
    labels = sample["label"].to_numpy()
    rows, known = [], {}
    for length in lengths:
        effective = min(length, longest)
        if effective in known:
            accuracy = known[effective]
        elif length == test_length or effective == min(test_length, longest):
            accuracy = float((np.argmax(test_prediction.predictions[: len(sample)], axis=-1) == labels).mean())
        else:
            prediction = trainer.predict(training.tokenize(sample, tokenizer, length))
            accuracy = float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())
        known[effective] = accuracy
        rows.append({"inference_max_length": length, "test_accuracy": round(accuracy, 4), "rows": len(sample)})
    return pd.DataFrame(rows)


def run_finetune(
    settings: Settings, config: TrainConfig, force: bool = False, parent_run_id: str | None = None, reporter=None
) -> FinetuneResult:
    """Read clean/, train, evaluate, and log params, metrics, plots and the model to one MLflow run.

    Everything that can be checked is checked before the run starts, so bad input never leaves a run
    behind; once started, the run ends FINISHED only after the model is logged, FAILED on an error (or when the
    launcher stops a rank because another one failed) and KILLED on Ctrl-C or SIGTERM.

    Under torchrun / accelerate launch every rank calls this; only rank 0 touches MLflow. A sweep passes its
    parent run (this run is its child) and a `reporter` that may prune the run at an evaluation.
    """
    launch = distributed.launch_of(settings)
    distributed.start(launch)
    try:
        return _run(settings, config, force, launch, parent_run_id, reporter)
    finally:
        distributed.finish(launch)


def _run(
    settings: Settings, config: TrainConfig, force: bool, launch: distributed.Launch, parent_run_id, reporter
) -> FinetuneResult:
    import mlflow
    from transformers import set_seed

    storage = open_storage(settings)
    manifest, frames = lake.read_dataset(storage, "clean", generation=settings.dataset_generation)
    splits = training.select_splits(frames["train"], frames["test"], config)
    digest = lake.manifest_digest(manifest)
    identity = {**config.params(), "dataset_digest": digest}
    experiment_id = previous = None
    if launch.main:  # the other ranks never open MLflow: a second process migrating sqlite at once fails
        registry = Registry(settings)
        experiment_id = registry.ensure_experiment()
        previous = None if force else registry.find_same_run(experiment_id, identity)
    experiment_id, previous = distributed.share(launch, (experiment_id, previous))
    if previous:
        log.info("run %s already trained these hyperparameters on this dataset; skipping (--force retrains)", previous)
        metrics = dict(mlflow.get_run(previous).data.metrics) if launch.main else {}
        return FinetuneResult(previous, experiment_id, metrics, 0.0, skipped=True)
    source = resolve_pretrained(config.pretrained_model)
    set_seed(config.seed)  # before the new head is initialised: one seed gives one model
    tokenizer, model = training.load_model(source)
    positions = getattr(model.config, "max_position_embeddings", 512)
    inference_length = min(config.inference_max_length, positions)

    datasets = {
        name: training.tokenize(getattr(splits, name), tokenizer, config.max_length) for name in ("train", "val")
    }
    datasets["test"] = training.tokenize(splits.test, tokenizer, inference_length)  # measured as it will be served
    datasets["test_frame"] = splits.test
    datasets["test_length"] = inference_length
    datasets["lengths"] = [n for n in (64, 128, 256, 512) if n <= positions]
    steps_per_epoch = -(-len(splits.train) // (config.batch_size * launch.world_size))
    history = training.History()
    parallel = distributed.trainer_flags(launch)
    if not launch.main:
        # Another rank: train and evaluate in lockstep, leave MLflow and every output to rank 0.
        _train(config, datasets, tokenizer, model, history, steps_per_epoch, False, parallel)
        return FinetuneResult("", experiment_id or "", {}, 0.0)

    commit = git_commit(settings) or "unknown"
    run = mlflow.start_run(experiment_id=experiment_id, run_name=config.run_name, nested=parent_run_id is not None)
    try:
        mlflow.log_params(
            {
                **config.params(),
                "inference_max_length_used": inference_length,
                **splits.sizes,
                "dataset_location": f"{settings.lake_location}/clean",
                "dataset_digest": digest,
                "device": training.device_name(),
                "world_size": launch.world_size,
            }
        )
        mlflow.set_tags(
            {
                "mlflow.source.git.commit": commit,
                "git_commit": commit,
                "pretrained_source": source,
                "dataset_source": manifest.get("source", ""),
                "dataset_generation": manifest["generation"],  # the lake keeps it while a version uses it
            }
        )
        mlflow.log_input(
            mlflow.data.from_pandas(
                splits.train,
                source=f"{settings.lake_location}/clean",
                targets="label",
                name=f"{settings.lake_prefix}-clean-{digest[:12]}",
            ),
            context="training",
        )
        train_output, prediction, model, by_length = _train(
            config, datasets, tokenizer, model, history, steps_per_epoch, True, parallel, reporter
        )
        if prediction is None:  # pruned: no test scores, no model, and the run says why
            mlflow.set_tag("sweep.pruned", "true")
            mlflow.end_run("KILLED")
            return FinetuneResult(
                run.info.run_id, experiment_id, history.val[-1] if history.val else {}, 0.0, pruned=True
            )
        labels, predicted = prediction.label_ids, np.argmax(prediction.predictions, axis=-1)
        test = training.classification_metrics(labels, predicted)
        with _timed(history, "logging"):
            mlflow.log_metrics({"test_accuracy": test["accuracy"], "test_f1": test["f1"]})
            artifacts.log_evaluation(splits.test["text"].tolist(), labels, prediction.predictions, by_length)
            artifacts.log_figure(
                plots.learning_curve(history.train_loss, history.val, steps_per_epoch), "plots/learning_curve.png"
            )
            tokenizer.model_max_length = inference_length  # the checkpoint and the servable use this length
        with _timed(history, "onnx"):  # the servable: ONNX export, its checks against torch, the pyfunc
            truth = [model.config.id2label[int(i)] for i in labels]
            artifacts.log_model(
                model,
                tokenizer,
                inference_length,
                splits.test["text"].tolist(),
                truth,
                prediction.predictions,
                settings.onnx_export == "int8",
            )
        _report_times(history.seconds)
    except distributed.LaunchStopped:
        mlflow.set_tag("failure", "the launcher stopped rank 0: another rank failed, or the launch was stopped")
        mlflow.end_run("FAILED")
        raise
    except KeyboardInterrupt:
        mlflow.end_run("KILLED")
        raise
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run("FINISHED")
    samples_per_second = float(train_output.metrics.get("train_samples_per_second", 0.0))
    final = {"test_accuracy": test["accuracy"], "test_f1": test["f1"], **(history.val[-1] if history.val else {})}
    return FinetuneResult(run.info.run_id, experiment_id, final, samples_per_second)
