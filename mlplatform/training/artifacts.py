"""What job 3 logs to its MLflow run besides params and metrics: evaluation, plots, the servable (the registered
model: ONNX graph, tokenizer, config) and the torch checkpoint it came from."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

import numpy as np

from mlplatform.errors import PlatformError
from mlplatform.serving import pyfunc
from mlplatform.serving.servable import CONFIG, TOKENIZER, Servable, softmax
from mlplatform.training import evaluation, onnx_export
from mlplatform.training import hf as training

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint"  # the run's torch weights and tokenizer, for further training and the torch backend


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


def build_servable(model, tokenizer, folder: Path, max_length: int, int8: bool) -> Path:
    """The servable folder of a trained model: the ONNX graph(s), `tokenizer.json` and `servable.json`."""
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer.save_pretrained(tmp)
        if not (Path(tmp) / TOKENIZER).is_file():
            raise PlatformError(f"{type(tokenizer).__name__} wrote no {TOKENIZER}: the servable needs a fast tokenizer")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / TOKENIZER).write_bytes((Path(tmp) / TOKENIZER).read_bytes())
    onnx_export.export(model, tokenizer, folder, int8=int8)
    config = model.config
    positions = getattr(config, "max_position_embeddings", 512)
    (folder / CONFIG).write_text(
        json.dumps(
            {
                "labels": [config.id2label[i] for i in range(config.num_labels)],
                "max_length": min(max_length, positions),
                "max_positions": positions,
                "vocab_size": config.vocab_size,
                "pad_id": tokenizer.pad_token_id or 0,
                "int8": False,  # until the test split approves it
                "base_model_type": getattr(config, "model_type", ""),
            },
            indent=2,
        )
    )
    return folder


def check_servable(folder: Path, texts: list[str], truth: list[str], torch_logits, int8: bool) -> dict:
    """Job 3's checks of the servable against torch on the labelled test split; records them in `servable.json`.

    fp32 ONNX must take torch's decision on every text torch is clear about, or the run fails: nothing else
    would be served. int8 is served only where it agrees with fp32 on 99% of the split and loses at most one point
    of accuracy, and where batching does not move a text's probabilities by more than BATCH_INVARIANCE."""
    reference = softmax(np.asarray(torch_logits, dtype=np.float64))
    fp32 = Servable(folder, int8=False)
    check = {"fp32": onnx_export.fp32_check(reference, fp32.probabilities(texts))}
    if not check["fp32"]["passed"]:
        raise PlatformError(f"the ONNX export disagrees with torch on the test split: {check['fp32']}")
    if int8:
        fp32_labels = [fp32.labels[i] for i in reference.argmax(-1)]
        quantized = Servable(folder, int8=True)
        check["int8"] = onnx_export.int8_test_split(
            fp32_labels, [row["label"] for row in quantized.predict(texts)], truth
        )
        spread = onnx_export.batch_invariance(quantized, texts)
        check["int8"]["batch_invariance"] = spread
        check["int8"]["passed"] = check["int8"]["passed"] and spread <= onnx_export.BATCH_INVARIANCE
    config = json.loads((folder / CONFIG).read_text())
    config["int8"] = bool(int8 and check["int8"]["passed"])
    config["check"] = check
    (folder / CONFIG).write_text(json.dumps(config, indent=2))
    return check


def log_model(model, tokenizer, max_length: int, texts: list[str], truth: list[str], torch_logits, int8: bool):
    """Log the torch checkpoint under `checkpoint/` and the servable as the run's pyfunc model `model`, with the
    parity checks as metrics and tags. Returns MLflow's ModelInfo of the servable."""
    import mlflow

    model = model.to("cpu").eval()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / CHECKPOINT
        model.save_pretrained(checkpoint, safe_serialization=True)
        tokenizer.save_pretrained(checkpoint)
        mlflow.log_artifacts(str(checkpoint), CHECKPOINT)
        folder = build_servable(model, tokenizer, Path(tmp) / "servable", max_length, int8)
        check = check_servable(folder, texts, truth, torch_logits, int8)
        metrics = {"onnx_fp32_agreement": check["fp32"]["agreement"]}
        if "int8" in check:
            metrics |= {
                "onnx_int8_agreement": check["int8"]["agreement"],
                "onnx_int8_accuracy_loss": check["int8"]["accuracy_loss"],
            }
        mlflow.log_metrics(metrics)
        served = "int8" if json.loads((folder / CONFIG).read_text())["int8"] else "fp32"
        mlflow.set_tags({"servable": f"onnx {served}", "onnx_export": _summary(check)})
        return pyfunc.log_servable(folder)


def _summary(check: dict) -> str:
    parts = [f"fp32: agreement {check['fp32']['agreement']}"]
    if "int8" in check:
        verdict = "served" if check["int8"]["passed"] else "refused on the test split"
        parts.append(f"int8: {verdict} (agreement {check['int8']['agreement']})")
    return ", ".join(parts)
