"""The model card of a registered version: what it is, what it was trained on, how well it does, and its limits."""

from __future__ import annotations

import re

from mlplatform.registry.runs import RunSummary

_HYPERPARAMETERS = (
    "pretrained_model",
    "learning_rate",
    "epochs",
    "batch_size",
    "max_length",
    "inference_max_length",
    "weight_decay",
    "warmup_ratio",
    "seed",
)
_SIZES = ("train_size", "val_size", "test_size")
SYNTHETIC_WARNING = (
    "**WARNING: trained on SYNTHETIC data** (the `sample` source: generated reviews for demos and tests). "
    "Its scores say nothing about real movie reviews. Do not use it for anything but a demo."
)


def is_synthetic(run: RunSummary) -> bool:
    """The lake's source spec, as job 1 recorded it: `sample`, `sample:N` and `sample seed=S` are synthetic."""
    return re.match(r"sample\b", run.tags.get("dataset_source", "")) is not None


def model_tags(run: RunSummary) -> dict[str, str]:
    """Registry tags people filter on."""
    tags = {
        "data_source": run.tags.get("dataset_source", "unknown") or "unknown",
        "synthetic": "true" if is_synthetic(run) else "false",
        "dataset_digest": run.params.get("dataset_digest", "unknown"),
        "base_model": run.params.get("pretrained_model", "unknown"),
        "run_id": run.run_id,
    }
    return {key: value[:250] for key, value in tags.items()}


def model_card(run: RunSummary) -> str:
    """Markdown for the version's description."""
    params, metrics = run.params, run.metrics
    lines = [f"# Movie-review sentiment classifier (run `{run.run_id}`)", ""]
    if is_synthetic(run):
        lines += [SYNTHETIC_WARNING, ""]
    lines += [
        "A BERT-family model fine-tuned to label an English movie review `positive` or `negative`.",
        "",
        "## Training data",
        f"- base model: `{params.get('pretrained_model', 'unknown')}`",
        f"- data source: `{run.tags.get('dataset_source', 'unknown')}`",
        f"- dataset: {params.get('dataset_location', 'unknown')}, digest `{params.get('dataset_digest', 'unknown')}`",
        "- rows: " + ", ".join(f"{k.removesuffix('_size')} {params[k]}" for k in _SIZES if k in params),
        "",
        "## Hyperparameters",
        *[f"- {k}: `{params[k]}`" for k in _HYPERPARAMETERS if k in params],
        "",
        "## Metrics",
        "| metric | value |",
        "|---|---|",
        *[f"| {k} | {v:.4f} |" for k, v in sorted(metrics.items()) if k.startswith(("val_", "test_"))],
        "",
        "## Input",
        "- Texts are cleaned as job 2 cleaned the training data (`mlplatform.data.text.clean_text`: HTML tags "
        "stripped, `<br />` as a space, entities unescaped, whitespace normalised). The servable applies it itself, "
        "in every runtime that loads this model (MLFlask, `mlflow models serve`, `mlflow.pyfunc.load_model`).",
        "",
        "## Intended use and limits",
        "- Intended for: sorting English movie reviews by sentiment, as in Saagie's sample project.",
        "- Two labels only: mixed or neutral reviews are forced into one of them.",
        "- Other domains (products, tweets), other languages, sarcasm and very long reviews beyond the model's "
        "inference length lower accuracy; check on your own data before relying on it.",
    ]
    return "\n".join(lines) + "\n"
