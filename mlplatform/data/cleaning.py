"""HTML removal with BeautifulSoup, quarantine of unusable rows, and the train/test overlap report."""

from __future__ import annotations

import multiprocessing

import pandas as pd
from tqdm import tqdm

from mlplatform.data.lake import LABELS
from mlplatform.data.text import clean_text

_PARALLEL_MIN_ROWS = 5000
_CHUNK = 2000


def _clean_chunk(texts: list[str]) -> list[str]:
    return [clean_text(t) for t in texts]


def clean_texts(texts: list[str], desc: str = "clean", processes: int | None = None) -> list[str]:
    """Clean many texts, on every core for large inputs, with a progress bar."""
    chunks = [texts[i : i + _CHUNK] for i in range(0, len(texts), _CHUNK)]
    processes = processes or multiprocessing.cpu_count()
    bar = tqdm(total=len(texts), desc=desc, unit=" reviews", disable=None)
    out: list[str] = []
    with bar:
        if len(texts) < _PARALLEL_MIN_ROWS or processes < 2:
            for chunk in chunks:
                out += _clean_chunk(chunk)
                bar.update(len(chunk))
        else:
            with multiprocessing.get_context("fork").Pool(processes) as pool:
                for cleaned in pool.imap(_clean_chunk, chunks):
                    out += cleaned
                    bar.update(len(cleaned))
    return out


def clean_frame(frame: pd.DataFrame, split: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return (clean rows, quarantined rows with a `reason` and the split they came from)."""
    frame = frame.copy()
    frame["text"] = clean_texts(frame["text"].fillna("").astype(str).tolist(), desc=f"clean {split}")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    reason = pd.Series("", index=frame.index)
    reason[~labels.isin(list(LABELS))] = "invalid_label"
    reason[(frame["text"] == "") & (reason == "")] = "empty_text"
    bad = reason != ""
    quarantined = frame[bad].assign(reason=reason[bad], split=split, label=frame.loc[bad, "label"].astype(str))
    kept = frame[~bad].assign(label=labels[~bad].astype("int64"))
    return kept.reset_index(drop=True), quarantined.reset_index(drop=True)


def overlap(train: pd.DataFrame, test: pd.DataFrame) -> int:
    """How many test rows have a text identical to some train row (a leak that inflates test scores)."""
    return int(test["text"].isin(set(train["text"])).sum())
