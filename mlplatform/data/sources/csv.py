"""CSV files: the Kaggle layout (`review,sentiment` with positive/negative) or `text,label` (0/1).

A single file is split into train/test with a seeded stratified split; a folder holding `train.csv` and
`test.csv` keeps its own split.
"""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import requests
from sklearn.model_selection import train_test_split

from mlplatform.data.lake import UNLABELLED
from mlplatform.data.sources.options import SourceOptions
from mlplatform.errors import DataError, SourceUnavailable

MAX_CSV_BYTES = 2 << 30  # far above any review set; a bigger file is read by no one in one go
_SENTIMENTS = {"negative": 0, "positive": 1, "neg": 0, "pos": 1, "0": 0, "1": 1}
UNLABELLED_MARK = "unlabelled"
_NO_LABEL = {UNLABELLED_MARK: UNLABELLED, "": UNLABELLED, "nan": UNLABELLED}  # incoming/ only


def load_csv(location: str, options: SourceOptions) -> dict[str, pd.DataFrame]:
    """Read one CSV (local path or http(s) URL) or a folder with train.csv and test.csv."""
    folder = Path(location)
    if folder.is_dir():
        return {
            split: _normalise(_read(str(folder / f"{split}.csv")), f"{location}/{split}.csv", split)
            for split in ("train", "test")
        }
    frame = _normalise(_read(location), location, "all", options.unlabelled)
    if options.unlabelled:
        return {"rows": frame}
    if not 0 < options.test_fraction < 1:
        raise DataError(f"TEST_FRACTION must be between 0 and 1, got {options.test_fraction}")
    try:
        train, test = train_test_split(
            frame, test_size=options.test_fraction, random_state=options.seed, stratify=frame["label"]
        )
    except ValueError as exc:
        raise DataError(f"{location}: cannot make a stratified test split: {exc}") from None
    return {"train": train.reset_index(drop=True), "test": test.reset_index(drop=True)}


def _read(location: str) -> pd.DataFrame:
    try:
        if location.startswith(("http://", "https://")):
            return pd.read_csv(io.BytesIO(_fetch(location)))
        if Path(location).is_file() and Path(location).stat().st_size > MAX_CSV_BYTES:
            raise DataError(f"{location}: over the {MAX_CSV_BYTES}-byte CSV limit")
        return pd.read_csv(location)
    except requests.RequestException as exc:
        raise SourceUnavailable(f"cannot download {location}: {type(exc).__name__}: {exc}") from None
    except FileNotFoundError:
        raise DataError(f"{location}: no such file") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{location}: empty file") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{location}: not a readable CSV: {exc}") from None


def _fetch(url: str) -> bytes:
    """The body of `url`, streamed and cut off past MAX_CSV_BYTES."""
    body = bytearray()
    with requests.get(url, timeout=30, stream=True) as response:
        response.raise_for_status()
        for chunk in response.iter_content(1 << 20):
            body += chunk
            if len(body) > MAX_CSV_BYTES:
                raise DataError(f"{url}: over the {MAX_CSV_BYTES}-byte CSV limit")
    return bytes(body)


def _normalise(frame: pd.DataFrame, location: str, split: str, unlabelled: bool = False) -> pd.DataFrame:
    columns = {c.strip().lower(): c for c in frame.columns}
    if {"review", "sentiment"} <= columns.keys():
        text, raw_labels = frame[columns["review"]], frame[columns["sentiment"]]
    elif {"text", "label"} <= columns.keys():
        text, raw_labels = frame[columns["text"]], frame[columns["label"]]
    elif unlabelled and columns.keys() & {"review", "text"}:
        text = frame[columns["review" if "review" in columns else "text"]]
        raw_labels = pd.Series([UNLABELLED_MARK] * len(frame), index=frame.index)
    else:
        raise DataError(
            f"{location}: missing columns: expected review,sentiment or text,label "
            f"(have: {', '.join(map(str, frame.columns)) or 'none'})"
        )
    if frame.empty:
        raise DataError(f"{location}: empty file (header only)")
    known = {**_SENTIMENTS, **_NO_LABEL} if unlabelled else _SENTIMENTS
    labels = raw_labels.fillna("").astype(str).str.strip().str.lower().str.replace(r"\.0$", "", regex=True).map(known)
    unknown = raw_labels[labels.isna()]
    if len(unknown):
        raise DataError(
            f"{location}: unknown label(s) {sorted(map(str, unknown.unique()))[:5]}; expected positive/negative or 0/1"
        )
    ids = frame[columns["id"]].astype(str) if "id" in columns else [f"{split}_{i}" for i in range(len(frame))]
    return pd.DataFrame({"id": ids, "text": text.fillna("").astype(str), "label": labels.astype("int64")})
