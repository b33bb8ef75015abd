"""Figures logged with each run: pure functions from numbers to matplotlib figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")  # headless: jobs run on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def learning_curve(train_loss: list[tuple[int, float]], val: list[dict], steps_per_epoch: int) -> Figure:
    """Train and validation loss, and validation accuracy/F1, all by global step, with the epochs marked."""
    fig, (ax_loss, ax_score) = plt.subplots(1, 2, figsize=(11, 4))
    if train_loss:
        steps, losses = zip(*train_loss, strict=True)
        ax_loss.plot(steps, losses, label="train_loss", alpha=0.8)
    if val:
        val_steps = [row["step"] for row in val]
        ax_loss.plot(val_steps, [row["val_loss"] for row in val], "o-", label="val_loss")
        ax_score.plot(val_steps, [row["val_accuracy"] for row in val], "o-", label="val_accuracy")
        ax_score.plot(val_steps, [row["val_f1"] for row in val], "s--", label="val_f1")
    last = max([s for s, _ in train_loss] + [row["step"] for row in val] + [1])
    for ax in (ax_loss, ax_score):
        for epoch in range(1, last // max(steps_per_epoch, 1) + 1):
            ax.axvline(epoch * steps_per_epoch, color="grey", linestyle=":", alpha=0.6)
        ax.grid(alpha=0.3)
        ax.set_xlim(0, last * 1.02)
    top = max([loss for _, loss in train_loss] + [row["val_loss"] for row in val] + [0.1])
    ax_loss.set(title="Loss", xlabel="step (dotted: end of an epoch)", ylabel="loss", ylim=(0, top * 1.1))
    ax_score.set(title="Validation scores", xlabel="step (dotted: end of an epoch)", ylabel="score", ylim=(0, 1.02))
    for ax in (ax_loss, ax_score):
        ax.legend(loc="best")
    fig.tight_layout()
    return fig
