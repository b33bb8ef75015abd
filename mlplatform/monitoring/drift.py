"""Drift statistics between a reference (the champion's training data, scored by the champion) and what the
model sees now: pure functions from numbers to numbers.

Population stability index (PSI) is the thresholded measure (DRIFT_THRESHOLD; 0.1 is a small shift, above 0.25
a large one, by the usual rule of thumb); Kolmogorov-Smirnov and chi-square p-values come with it, so a reader can
tell a large-but-noisy shift from a small-but-certain one.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mlplatform.data.text import clean_text

_EPS = 1e-4  # a bucket's share never reaches 0 in the PSI's log
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")
TOP_WORDS = 300  # vocabulary shift: the reference's most frequent words, and one bucket for all others
OTHER = "<other>"


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI of two histograms over the same buckets (counts or shares)."""
    e = np.clip(np.asarray(expected, float) / max(np.sum(expected), 1e-12), _EPS, None)
    a = np.clip(np.asarray(actual, float) / max(np.sum(actual), 1e-12), _EPS, None)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_psi(reference: np.ndarray, current: np.ndarray, bins: int = 10) -> float:
    """PSI over the reference's deciles (merged where values tie)."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    edges = np.concatenate([[-np.inf], edges, [np.inf]])
    return psi(np.histogram(reference, edges)[0], np.histogram(current, edges)[0])


def ks_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    from scipy.stats import ks_2samp

    return float(ks_2samp(reference, current).pvalue)


def chi2_pvalue(reference: np.ndarray, current: np.ndarray) -> float:
    """Chi-square test that two histograms over the same buckets come from one distribution."""
    from scipy.stats import chi2_contingency

    table = np.array([reference, current], float)
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(chi2_contingency(table).pvalue)


def words(text: str) -> list[str]:
    return _WORD.findall(clean_text(text).lower())


@dataclass
class Profile:
    """What a model saw and said: token counts, top-label confidence, labels and (when kept) the texts."""

    tokens: np.ndarray
    confidence: np.ndarray
    labels: list[str]
    texts: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.labels)


def _label_counts(labels: list[str], names: list[str]) -> np.ndarray:
    counts = Counter(labels)
    return np.array([counts.get(name, 0) for name in names], float)


def _word_buckets(texts: list[str], top: list[str]) -> np.ndarray:
    index = {word: i for i, word in enumerate(top)}
    counts = np.zeros(len(top) + 1)
    for text in texts:
        for word in words(text):
            counts[index.get(word, len(top))] += 1
    return counts


def compare(reference: Profile, current: Profile, label_names: list[str]) -> dict[str, float]:
    """Every drift metric of `current` against `reference` (vocabulary ones only when both have texts)."""
    ref_labels, cur_labels = _label_counts(reference.labels, label_names), _label_counts(current.labels, label_names)
    metrics = {
        "rows": float(current.rows),
        "length_psi": numeric_psi(reference.tokens, current.tokens),
        "length_ks_pvalue": ks_pvalue(reference.tokens, current.tokens),
        "median_tokens": float(np.median(current.tokens)),
        "median_tokens_reference": float(np.median(reference.tokens)),
        "confidence_psi": numeric_psi(reference.confidence, current.confidence),
        "confidence_ks_pvalue": ks_pvalue(reference.confidence, current.confidence),
        "mean_confidence": float(np.mean(current.confidence)),
        "mean_confidence_reference": float(np.mean(reference.confidence)),
        "label_psi": psi(ref_labels, cur_labels),
        "label_chi2_pvalue": chi2_pvalue(ref_labels, cur_labels),
        f"share_{label_names[-1]}": float(cur_labels[-1] / max(cur_labels.sum(), 1)),
        f"share_{label_names[-1]}_reference": float(ref_labels[-1] / max(ref_labels.sum(), 1)),
    }
    if reference.texts and current.texts:
        metrics.update(vocabulary_shift(reference.texts, current.texts))
    return metrics


def vocabulary_shift(reference: list[str], current: list[str]) -> dict[str, float]:
    """Word-frequency PSI over the reference's top words, and the out-of-vocabulary rate of each side.

    The vocabulary is the words of one half of the reference; the other half gives the OOV rate to expect."""
    half = len(reference) // 2
    known = {word for text in reference[:half] for word in words(text)}
    counts = Counter(word for text in reference for word in words(text))
    top = [word for word, _ in counts.most_common(TOP_WORDS)]
    ref_buckets, cur_buckets = _word_buckets(reference, top), _word_buckets(current, top)
    return {
        "vocabulary_psi": psi(ref_buckets, cur_buckets),
        "vocabulary_chi2_pvalue": chi2_pvalue(ref_buckets, cur_buckets),
        "oov_rate": _oov(current, known),
        "oov_rate_reference": _oov(reference[half:], known),
    }


def _oov(texts: list[str], known: set[str]) -> float:
    tokens = [word for text in texts for word in words(text)]
    return sum(word not in known for word in tokens) / len(tokens) if tokens else 0.0


DRIFT_MEASURES = ("length_psi", "vocabulary_psi", "confidence_psi", "label_psi")


def drift_score(metrics: dict[str, float]) -> float:
    """The largest PSI: the one number DRIFT_THRESHOLD is held against."""
    return max(metrics[name] for name in DRIFT_MEASURES if name in metrics)


def alerts(metrics: dict[str, float], threshold: float) -> list[str]:
    return [
        f"{name} {metrics[name]:.3f} > {threshold:g}"
        for name in DRIFT_MEASURES
        if name in metrics and metrics[name] > threshold
    ]


def live_quality(joined: pd.DataFrame) -> dict[str, float | int | None]:
    """Accuracy and F1 (positive class) of logged answers whose true label came back as feedback."""
    from sklearn.metrics import f1_score

    if joined.empty:
        return {"feedback_rows": 0, "live_accuracy": None, "live_f1": None}
    truth, said = joined["true_label"].astype(str), joined["label"].astype(str)
    return {
        "feedback_rows": len(joined),
        "live_accuracy": float((truth == said).mean()),
        "live_f1": float(f1_score(truth, said, pos_label="positive", zero_division=0)),
    }
