"""The prediction log and its feedback in the lake, as date-partitioned Parquet files.

  predictions_log/date=2026-11-29/<time>-<writer>-<n>.parquet   one object per flush of one MLFlask worker
  feedback/date=2026-11-29/<time>-<id>.parquet                  one object per POST /feedback

Objects are only ever added, so writers need no coordination: a reader lists the partitions of its window.
"""

from __future__ import annotations

import io
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import pandas as pd

from mlplatform.data.storage import Storage

LOG_STAGE = "predictions_log"
FEEDBACK_STAGE = "feedback"
LOG_COLUMNS = {
    "time": "datetime64[us, UTC]",
    "prediction_id": "string",
    "request_id": "string",
    "endpoint": "string",
    "model": "string",  # the served name the caller asked for
    "answered_by": "string",  # that name, or its canary arm
    "version": "string",
    "run_id": "string",
    "tokens": "int64",
    "truncated": "bool",
    "label": "string",
    "score": "float64",
    "latency_ms": "float64",
    "text_sha256": "string",
    "text": "string",  # its first MLFLASK_LOG_TEXT_CHARS characters; null under MLFLASK_LOG_TEXT_CHARS=0
}
FEEDBACK_COLUMNS = {
    "time": "datetime64[us, UTC]",
    "prediction_id": "string",
    "text_sha256": "string",
    "true_label": "string",
    "sender": "string",  # the client address that posted it (the proxy's X-Forwarded-For first hop, if any)
    "request_id": "string",
}
_PARTITION = re.compile(r"date=(\d{4}-\d{2}-\d{2})/")


def _frame(records: list[dict], columns: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(records, columns=list(columns))
    return frame.astype(columns)


def write(storage: Storage, stage: str, records: list[dict], writer: str) -> list[str]:
    """Add `records` (dicts with a UTC `time`) to `stage`, one object per day they span; returns the keys."""
    columns = LOG_COLUMNS if stage == LOG_STAGE else FEEDBACK_COLUMNS
    frame = _frame(records, columns)
    keys = []
    stamp = datetime.now(UTC).strftime("%H%M%S%f")
    for day, part in frame.groupby(frame["time"].dt.strftime("%Y-%m-%d"), sort=True):
        key = f"{stage}/date={day}/{stamp}-{writer}-{uuid.uuid4().hex[:8]}.parquet"
        buffer = io.BytesIO()
        part.to_parquet(buffer, index=False, engine="pyarrow")
        storage.put(key, buffer.getvalue())
        keys.append(key)
    return keys


def read(storage: Storage, stage: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The records of `stage` with start <= time < end."""
    columns = LOG_COLUMNS if stage == LOG_STAGE else FEEDBACK_COLUMNS
    frames = []
    for day in _days(start, end):
        for key in storage.list(f"{stage}/date={day.isoformat()}"):
            if key.endswith(".parquet"):
                frames.append(pd.read_parquet(io.BytesIO(storage.get(key) or b""), engine="pyarrow"))
    if not frames:
        return _frame([], columns)
    frame = pd.concat(frames, ignore_index=True).astype(columns)
    return frame[(frame["time"] >= start) & (frame["time"] < end)].sort_values("time").reset_index(drop=True)


def _days(start: datetime, end: datetime) -> list[date]:
    first, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def days_held(storage: Storage, stage: str) -> list[str]:
    """The dates that have at least one object in `stage`, oldest first."""
    return sorted({m.group(1) for key in storage.list(stage) if (m := _PARTITION.search(key))})


def with_feedback(log: pd.DataFrame, feedback: pd.DataFrame) -> pd.DataFrame:
    """The log rows that have feedback, with its `true_label`: by prediction id, else by text hash. One label per
    text per window: a hash labels only the latest answer to that text, and none of a text already labelled by
    id; the latest feedback on a prediction wins. So a labelled text sent again and again does not count again."""
    feedback = feedback.sort_values("time")
    by_id = feedback.dropna(subset=["prediction_id"]).drop_duplicates("prediction_id", keep="last")
    by_hash = feedback[feedback["prediction_id"].isna()].dropna(subset=["text_sha256"])
    by_hash = by_hash.drop_duplicates("text_sha256", keep="last").set_index("text_sha256")["true_label"]
    joined = log.merge(by_id[["prediction_id", "true_label"]], on="prediction_id", how="left")
    labelled = set(joined.loc[joined["true_label"].notna(), "text_sha256"])
    open_rows = joined[joined["true_label"].isna() & joined["text_sha256"].isin(by_hash.index)]
    open_rows = open_rows[~open_rows["text_sha256"].isin(labelled)]
    latest = open_rows.sort_values("time").drop_duplicates("text_sha256", keep="last")
    joined.loc[latest.index, "true_label"] = latest["text_sha256"].map(by_hash)
    return joined.dropna(subset=["true_label"]).reset_index(drop=True)
