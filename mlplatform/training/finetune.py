"""Job 3 as a function: fine-tune on the lake's `clean/` data inside one MLflow run."""

from __future__ import annotations

import json
import logging
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlplatform.data import lake
from mlplatform.data.storage import open_storage
from mlplatform.registry import tracking
from mlplatform.serving import onnx as onnx_backend
from mlplatform.settings import Settings
from mlplatform.training import evaluation, plots
from mlplatform.training import hf as training
from mlplatform.training.config import TrainConfig
from mlplatform.training.pretrained import resolve_pretrained

log = logging.getLogger(__name__)
INPUT_EXAMPLE = ["A wonderful film, I loved every minute.", "Dull, predictable and far too long."]


@dataclass(frozen=True)
class FinetuneResult:
    run_id: str
    experiment_id: str
    metrics: dict[str, float]
    samples_per_second: float
    skipped: bool = False


def find_same_run(experiment_id: str, params: dict) -> str | None:
    """A FINISHED run with exactly these params (hyperparameters and dataset digest): rerunning would repeat it."""
    from mlflow.tracking import MlflowClient

    wanted = {k: str(v) for k, v in params.items()}
    runs = MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"attributes.status = 'FINISHED' and params.dataset_digest = '{wanted['dataset_digest']}'",
        max_results=200,
    )
    for run in runs:
        if all(run.data.params.get(k) == v for k, v in wanted.items()):
            return run.info.run_id
    return None


def git_commit(settings: Settings) -> str | None:
    """The checkout's commit, or GIT_COMMIT where the code is no git checkout (a Docker image)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return settings.git_commit
    return out.stdout.strip() or settings.git_commit


def _metrics_callback(history: training.History):
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

    return MlflowMetrics()


def _compute_metrics(prediction) -> dict[str, float]:
    return training.classification_metrics(prediction.label_ids, np.argmax(prediction.predictions, axis=-1))


def _pip_requirements() -> list[str]:
    """Explicit, because MLflow's inference of requirements crashes when torchvision is absent."""
    from importlib.metadata import version

    return [
        f"mlflow=={version('mlflow')}",
        f"torch=={version('torch').split('+')[0]}",
        f"transformers=={version('transformers')}",
        f"tokenizers=={version('tokenizers')}",
        f"accelerate=={version('accelerate')}",
    ]


def _log_figure(figure, path: str) -> None:
    import matplotlib.pyplot as plt
    import mlflow

    try:
        mlflow.log_figure(figure, path)
    finally:
        plt.close(figure)  # long-lived processes (MLDash, Dagster) must not pile figures up


def _log_evaluation(texts: list[str], labels, logits, by_length) -> None:
    import mlflow

    names = list(training.LABEL2ID)
    probabilities = evaluation.softmax(np.asarray(logits, dtype=np.float64))
    mlflow.log_metrics(evaluation.scores(labels, probabilities, names))
    for path, figure in evaluation.figures(labels, probabilities, names).items():
        _log_figure(figure, path)
    mistakes = evaluation.confident_mistakes(texts, labels, probabilities, names)
    mlflow.log_text(mistakes.to_csv(index=False), "evaluation/confident_mistakes.csv")
    mlflow.log_text(by_length.to_csv(index=False), "evaluation/accuracy_by_inference_length.csv")
    _log_figure(evaluation.length_figure(by_length), "plots/accuracy_by_inference_length.png")


def _log_onnx(model, tokenizer, texts: list[str], int8: bool) -> None:
    """The ONNX export serving uses (an artifact of the run, beside the transformers model), with the parity check
    against torch it passed on test texts. A failed export is logged as such; the run still finishes."""
    import mlflow

    from mlplatform.serving.predictor import Predictor

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        try:
            model.save_pretrained(root / "torch")
            tokenizer.save_pretrained(root / "torch")
            (root / "torch" / "input_example.json").write_text(json.dumps(texts))  # the parity check's texts
            onnx_backend.export(model, tokenizer, root / "onnx", int8=int8)
            report = {}
            for quantized in (False, True) if int8 else (False,):
                predictor = Predictor(root / "torch", quantize=quantized, backend="onnx", onnx_dir=root / "onnx")
                report["int8" if quantized else "fp32"] = {
                    "backend": predictor.backend,
                    "check": predictor.backend_note,
                }
            (root / "onnx" / onnx_backend.PARITY).write_text(json.dumps(report, indent=2))
        except Exception as exc:  # noqa: BLE001 - serving exports (or falls back to torch) by itself
            log.warning("ONNX export failed (%s: %s); MLFlask will export at deploy time", type(exc).__name__, exc)
            mlflow.set_tag("onnx_export", f"failed: {type(exc).__name__}")
            return
        mlflow.log_artifacts(str(root / "onnx"), "onnx")
        mlflow.set_tag("onnx_export", ", ".join(f"{k}: {v['backend']}" for k, v in report.items()))


def _log_model(model, tokenizer, max_length: int) -> None:
    import mlflow
    import pandas as pd
    from mlflow.models import infer_signature
    from transformers import pipeline

    model = model.to("cpu").eval()
    classifier = pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1)
    output = pd.DataFrame(classifier(INPUT_EXAMPLE, truncation=True, max_length=max_length))
    mlflow.transformers.log_model(
        transformers_model={"model": model, "tokenizer": tokenizer},
        name="model",
        task="text-classification",
        signature=infer_signature(INPUT_EXAMPLE, output),
        input_example=INPUT_EXAMPLE,
        pip_requirements=_pip_requirements(),
        model_config={"truncation": True, "max_length": max_length},
    )


def _train(
    config: TrainConfig,
    datasets: dict,
    tokenizer,
    model,
    history: training.History,
    steps_per_epoch: int,
    main_process: bool,
):
    """Fine-tune with the HF Trainer (length-grouped batches, dynamic padding); return (output, test prediction,
    trained model)."""
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
            seed=config.seed,
            eval_strategy="steps",
            eval_steps=max(1, steps_per_epoch // config.evals_per_epoch),
            save_strategy="no",
            logging_strategy="steps",
            logging_steps=max(1, steps_per_epoch // 20),
            train_sampling_strategy="group_by_length",
            report_to="none",
            disable_tqdm=False,
            dataloader_pin_memory=torch.cuda.is_available(),
            **training.precision_flags(),
        )
        trainer = Trainer(
            model=model,
            args=args,
            train_dataset=datasets["train"],
            eval_dataset=datasets["val"],
            data_collator=DataCollatorWithPadding(tokenizer),
            compute_metrics=_compute_metrics,
            callbacks=[_metrics_callback(history)] if main_process else [],
        )
        trainer.remove_callback(ProgressCallback)
        trainer.add_callback(_QuietProgress)  # bars, without the raw log dicts printed between them
        output = trainer.train()
        prediction = trainer.predict(datasets["test"])
        by_length = _accuracy_by_length(trainer, tokenizer, datasets["test_frame"], datasets["lengths"])
    return output, prediction, trainer.model, by_length


def _quiet_progress_class():
    from transformers.trainer_callback import ProgressCallback

    class QuietProgress(ProgressCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            pass

    return ProgressCallback, QuietProgress


def _accuracy_by_length(trainer, tokenizer, frame, lengths: list[int]):
    """Test accuracy at each inference length (on up to 500 test rows): the speed/accuracy trade-off."""
    import pandas as pd

    sample = frame.head(500)
    rows = []
    for length in lengths:
        prediction = trainer.predict(training.tokenize(sample, tokenizer, length))
        accuracy = float((np.argmax(prediction.predictions, axis=-1) == prediction.label_ids).mean())
        rows.append({"inference_max_length": length, "test_accuracy": round(accuracy, 4), "rows": len(sample)})
    return pd.DataFrame(rows)


def run_finetune(settings: Settings, config: TrainConfig, force: bool = False) -> FinetuneResult:
    """Read clean/, train, evaluate, and log params, metrics, plots and the model to one MLflow run.

    Everything that can be checked is checked before the run starts, so bad input never leaves a run
    behind; once started, the run ends FINISHED only after the model is logged, FAILED on an error and
    KILLED on Ctrl-C or SIGTERM.
    """
    import mlflow
    from transformers import set_seed

    config.validate()
    storage = open_storage(settings)
    manifest, frames = lake.read_dataset(storage, "clean")
    splits = training.select_splits(frames["train"], frames["test"], config)
    tracking.configure(settings)
    main_process = settings.rank == 0  # torchrun sets RANK: only rank 0 logs
    experiment_id = tracking.ensure_experiment(settings) if main_process else tracking.find_experiment(settings)
    digest = lake.manifest_digest(manifest)
    identity = {**config.params(), "dataset_digest": digest}
    previous = None if force or not experiment_id else find_same_run(experiment_id, identity)
    if previous:
        log.info("run %s already trained these hyperparameters on this dataset; skipping (--force retrains)", previous)
        run = mlflow.get_run(previous)
        return FinetuneResult(previous, experiment_id, dict(run.data.metrics), 0.0, skipped=True)
    source = resolve_pretrained(config.pretrained_model)
    tokenizer, model = training.load_model(source)
    positions = getattr(model.config, "max_position_embeddings", 512)
    inference_length = min(config.inference_max_length, positions)

    set_seed(config.seed)
    datasets = {
        name: training.tokenize(getattr(splits, name), tokenizer, config.max_length) for name in ("train", "val")
    }
    datasets["test"] = training.tokenize(splits.test, tokenizer, inference_length)  # measured as it will be served
    datasets["test_frame"] = splits.test
    datasets["lengths"] = [n for n in (64, 128, 256, 512) if n <= positions]
    steps_per_epoch = -(-len(splits.train) // config.batch_size)
    history = training.History()
    if not main_process:
        # Another rank of a torchrun / accelerate launch: train in lockstep, leave MLflow to rank 0.
        _train(config, datasets, tokenizer, model, history, steps_per_epoch, main_process=False)
        return FinetuneResult("", experiment_id or "", {}, 0.0)

    commit = git_commit(settings) or "unknown"
    run = mlflow.start_run(experiment_id=experiment_id, run_name=config.run_name)
    try:
        mlflow.log_params(
            {
                **config.params(),
                "inference_max_length_used": inference_length,
                **splits.sizes,
                "dataset_location": f"{settings.lake_location}/clean",
                "dataset_digest": digest,
                "device": training.device_name(),
            }
        )
        mlflow.set_tags(
            {
                "mlflow.source.git.commit": commit,
                "git_commit": commit,
                "pretrained_source": source,
                "dataset_source": manifest.get("source", ""),
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
            config, datasets, tokenizer, model, history, steps_per_epoch, main_process=True
        )
        labels, predicted = prediction.label_ids, np.argmax(prediction.predictions, axis=-1)
        test = training.classification_metrics(labels, predicted)
        mlflow.log_metrics({"test_accuracy": test["accuracy"], "test_f1": test["f1"]})
        _log_evaluation(splits.test["text"].tolist(), labels, prediction.predictions, by_length)
        _log_figure(plots.learning_curve(history.train_loss, history.val, steps_per_epoch), "plots/learning_curve.png")
        tokenizer.model_max_length = inference_length  # the logged model, pyfunc and MLFlask predict at this length
        _log_model(model, tokenizer, inference_length)
        if settings.onnx_export != "none":
            _log_onnx(model, tokenizer, splits.test["text"].head(64).tolist(), settings.onnx_export == "int8")
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
