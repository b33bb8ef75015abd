"""The evaluation people expect, logged to the run: per-class precision/recall/F1, ROC and PR curves with their
AUCs, the confusion matrix, the most confident mistakes (where label noise shows), and accuracy by inference
length. Every figure is closed once logged."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: jobs run on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import (  # noqa: E402
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    RocCurveDisplay,
    average_precision_score,
    classification_report,
    roc_auc_score,
)

MISTAKES = 20


def scores(labels: np.ndarray, probabilities: np.ndarray, names: list[str]) -> dict[str, float]:
    """test_<class>_precision/recall/f1, test_roc_auc and test_pr_auc (positive class = index 1)."""
    report = classification_report(
        labels,
        probabilities.argmax(-1),
        labels=list(range(len(names))),
        target_names=names,
        output_dict=True,
        zero_division=0,
    )
    metrics = {
        f"test_{name}_{k}": float(report[name][k]) for name in names for k in ("precision", "recall", "f1-score")
    }
    metrics = {key.replace("f1-score", "f1"): value for key, value in metrics.items()}
    if len(set(labels.tolist())) == 2:
        metrics["test_roc_auc"] = float(roc_auc_score(labels, probabilities[:, 1]))
        metrics["test_pr_auc"] = float(average_precision_score(labels, probabilities[:, 1]))
    return metrics


def figures(labels: np.ndarray, probabilities: np.ndarray, names: list[str]) -> dict[str, plt.Figure]:
    """{artifact path: figure}: ROC, PR and the confusion matrix, drawn by scikit-learn's displays."""
    drawn = {}
    fig, ax = plt.subplots(figsize=(4.5, 4))
    ConfusionMatrixDisplay.from_predictions(
        labels, probabilities.argmax(-1), display_labels=names, ax=ax, cmap="Blues", colorbar=False
    )
    ax.set_title("Test confusion matrix")
    drawn["plots/confusion_matrix.png"] = fig
    if len(set(labels.tolist())) == 2:
        for path, display in (("plots/roc_curve.png", RocCurveDisplay), ("plots/pr_curve.png", PrecisionRecallDisplay)):
            fig, ax = plt.subplots(figsize=(4.5, 4))
            display.from_predictions(labels, probabilities[:, 1], pos_label=1, ax=ax, name=names[1])
            ax.set(xlim=(0, 1), ylim=(0, 1.02))
            ax.grid(alpha=0.3)
            drawn[path] = fig
    for fig in drawn.values():
        fig.tight_layout()
    return drawn


def confident_mistakes(
    texts: list[str], labels: np.ndarray, probabilities: np.ndarray, names: list[str]
) -> pd.DataFrame:
    """The test rows the model got wrong with the highest confidence: text, label, prediction, score."""
    predicted = probabilities.argmax(-1)
    wrong = np.flatnonzero(predicted != labels)
    confidence = probabilities[wrong, predicted[wrong]]
    order = wrong[np.argsort(-confidence)][:MISTAKES]
    return pd.DataFrame(
        {
            "text": [texts[i][:1000] for i in order],
            "label": [names[labels[i]] for i in order],
            "prediction": [names[predicted[i]] for i in order],
            "score": [round(float(probabilities[i, predicted[i]]), 4) for i in order],
        }
    )


def length_figure(table: pd.DataFrame) -> plt.Figure:
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.bar([str(n) for n in table["inference_max_length"]], table["test_accuracy"], color="#4c72b0")
    for x, value in enumerate(table["test_accuracy"]):
        ax.text(x, value + 0.01, f"{value:.3f}", ha="center")
    ax.set(
        title="Test accuracy by inference length", xlabel="tokens kept per review", ylabel="accuracy", ylim=(0, 1.05)
    )
    fig.tight_layout()
    return fig
