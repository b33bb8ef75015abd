"""What job 3 logs to its MLflow run besides params and metrics: evaluation, plots, the model and its ONNX export."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from mlplatform.serving import onnx as onnx_backend
from mlplatform.serving.predictor import softmax
from mlplatform.training import evaluation
from mlplatform.training import hf as training

log = logging.getLogger(__name__)
INPUT_EXAMPLE = ["A wonderful film, I loved every minute.", "Dull, predictable and far too long."]


def pip_requirements() -> list[str]:
    """Explicit, because MLflow's inference of requirements crashes when torchvision is absent."""
    from importlib.metadata import version

    return [
        f"mlflow=={version('mlflow')}",
        f"torch=={version('torch').split('+')[0]}",
        f"transformers=={version('transformers')}",
        f"tokenizers=={version('tokenizers')}",
        f"accelerate=={version('accelerate')}",
    ]


def log_figure(figure, path: str) -> None:
    import matplotlib.pyplot as plt
    import mlflow

    try:
        mlflow.log_figure(figure, path)
    finally:
        plt.close(figure)  # long-lived processes (MLDash, Dagster) must not pile figures up


def log_evaluation(texts: list[str], labels, logits, by_length) -> None:
    import mlflow

    names = list(training.LABEL2ID)
    probabilities = softmax(np.asarray(logits, dtype=np.float64))
    mlflow.log_metrics(evaluation.scores(labels, probabilities, names))
    for path, figure in evaluation.figures(labels, probabilities, names).items():
        log_figure(figure, path)
    mistakes = evaluation.confident_mistakes(texts, labels, probabilities, names)
    mlflow.log_text(mistakes.to_csv(index=False), "evaluation/confident_mistakes.csv")
    mlflow.log_text(by_length.to_csv(index=False), "evaluation/accuracy_by_inference_length.csv")
    log_figure(evaluation.length_figure(by_length), "plots/accuracy_by_inference_length.png")


def log_onnx(
    model, tokenizer, texts: list[str], labels: list[str], int8: bool, fp32_labels: list[str] | None = None
) -> None:
    """The ONNX export serving uses (an artifact of the run, beside the transformers model), with the parity check
    against torch it passed. int8 is also checked on the whole labelled test split (`texts`, `labels`): it must
    agree with fp32 on 99% of it and lose at most 1 point of accuracy, or serving keeps fp32. `fp32_labels`, the
    fp32 model's answers on that split when already known (job 3's test predictions), spare a second pass. A failed
    export is logged as such; the run still finishes."""
    import mlflow

    from mlplatform.serving.predictor import Predictor

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        try:
            model.save_pretrained(root / "torch")
            tokenizer.save_pretrained(root / "torch")
            (root / "torch" / "input_example.json").write_text(json.dumps(texts[:64]))  # the parity check's texts
            onnx_backend.export(model, tokenizer, root / "onnx", int8=int8)
            report, predicted = {}, {}
            for quantized in (False, True) if int8 else (False,):
                predictor = Predictor(root / "torch", quantize=quantized, backend="onnx", onnx_dir=root / "onnx")
                key = "int8" if quantized else "fp32"
                report[key] = {"backend": predictor.backend, "check": predictor.backend_note}
                if int8 and (quantized or fp32_labels is None):
                    predicted[key] = [row["label"] for row in predictor.predict(texts)]
                elif int8:
                    predicted[key] = list(fp32_labels)
            if int8:
                check = onnx_backend.int8_test_split(predicted["fp32"], predicted["int8"], labels)
                report["int8"]["test_split"] = check
                mlflow.log_metrics(
                    {
                        "onnx_int8_agreement": report["int8"]["test_split"]["agreement"],
                        "onnx_int8_accuracy_loss": report["int8"]["test_split"]["accuracy_loss"],
                    }
                )
            (root / "onnx" / onnx_backend.PARITY).write_text(json.dumps(report, indent=2))
        except Exception as exc:  # noqa: BLE001 - serving exports (or falls back to torch) by itself
            log.warning("ONNX export failed (%s: %s); MLFlask will export at deploy time", type(exc).__name__, exc)
            mlflow.set_tag("onnx_export", f"failed: {type(exc).__name__}")
            return
        mlflow.log_artifacts(str(root / "onnx"), "onnx")
        summary = {k: v["backend"] for k, v in report.items()}
        if int8 and not report["int8"]["test_split"]["passed"]:
            summary["int8"] = "refused on the test split"
        mlflow.set_tag("onnx_export", ", ".join(f"{k}: {v}" for k, v in summary.items()))


def log_model(model, tokenizer, max_length: int) -> None:
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
        pip_requirements=pip_requirements(),
        model_config={"truncation": True, "max_length": max_length},
    )
