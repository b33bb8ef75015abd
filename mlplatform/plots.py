"""Figures logged with each run: pure functions from numbers to matplotlib figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: jobs run on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def learning_curve(train_loss: list[tuple[int, float]], val: list[dict], steps_per_epoch: int) -> Figure:
    """Train loss by step and validation loss/accuracy/F1 by epoch, on one shared step axis."""
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(11, 4))
    if train_loss:
        steps, losses = zip(*train_loss, strict=True)
        ax_loss.plot(steps, losses, label="train_loss", alpha=0.8)
    if val:
        val_steps = [row["epoch"] * steps_per_epoch for row in val]
        ax_loss.plot(val_steps, [row["val_loss"] for row in val], "o-", label="val_loss")
        epochs = [row["epoch"] for row in val]
        ax_score.plot(epochs, [row["val_accuracy"] for row in val], "o-", label="val_accuracy")
        ax_score.plot(epochs, [row["val_f1"] for row in val], "s--", label="val_f1")
    ax_loss.set(title="Loss", xlabel="step", ylabel="loss")
    ax_score.set(title="Validation scores", xlabel="epoch", ylabel="score", ylim=(0, 1.02))
    for ax in (ax_loss, ax_score):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def confusion_matrix(matrix: list[list[int]], labels: list[str], title: str = "Test confusion matrix") -> Figure:
    """A 2x2 (or NxN) count matrix with the counts written in each cell."""
    fig, ax = plt.subplots(figsize=(4.5, 4))
    image = ax.imshow(matrix, cmap="Blues")
    ax.set(
        xticks=range(len(labels)),
        yticks=range(len(labels)),
        xticklabels=labels,
        yticklabels=labels,
        xlabel="predicted",
        ylabel="true",
        title=title,
    )
    peak = max(max(row) for row in matrix) or 1
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", color="white" if count > peak / 2 else "black")
    fig.colorbar(image, ax=ax)
    fig.tight_layout()
    return fig
