"""Every prediction, recorded off the request path and written to the lake's `predictions_log/` in batches.

A request only appends its records to a bounded in-memory buffer (a lock and a list). A writer thread per
worker flushes the buffer every MLFLASK_LOG_FLUSH_SECONDS, or sooner once MLFLASK_LOG_FLUSH_ROWS are waiting:
it hashes the texts, counts their tokens with the answering servable, and writes one Parquet object.
When the buffer is full a request's records are dropped and counted, never waited for. A graceful stop flushes
what is left (atexit); a crash loses at most one flush interval.
"""

from __future__ import annotations

import atexit
import hashlib
import logging
import os
import threading
import uuid
from datetime import UTC, datetime

from prometheus_client import Counter

from mlplatform.data.storage import open_storage
from mlplatform.monitoring import predlog

log = logging.getLogger(__name__)
WRITTEN = Counter("mlflask_prediction_log_records", "Prediction records written to the lake.")
DROPPED = Counter("mlflask_prediction_log_dropped", "Prediction records not logged, by reason.", ["reason"])
FLUSHES = Counter("mlflask_prediction_log_flushes", "Objects the prediction log wrote to the lake.")
COUNT_CHARS = 8192  # tokens are counted on at most this much of a text: past it, every model here truncates anyway
RECORD_BYTES = 256  # a record's fixed cost in the buffer (ids, names, numbers), besides its text


def new_ids(count: int) -> list[str]:
    return [uuid.uuid4().hex for _ in range(count)]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class PredictionLog:
    """One per worker: `record()` from request threads, one writer thread started on first use."""

    def __init__(self, storage, capacity_bytes: int, flush_rows: int, flush_seconds: float, text_chars: int):
        self.storage = storage
        self._capacity = capacity_bytes
        self._flush_rows = flush_rows
        self._flush_seconds = flush_seconds
        self._text_chars = text_chars
        self._pending: list[tuple] = []
        self._count = 0  # records waiting
        self._bytes = 0  # what they hold: the kept texts and a fixed cost per record
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._writer = f"{os.getpid()}-{uuid.uuid4().hex[:6]}"

    def record(self, request: dict, servable, texts: list[str], predictions: list[dict]) -> None:
        """Queue one request's predictions (each already holds its `prediction_id`); never blocks on I/O.

        Only each text's hash and first COUNT_CHARS characters are held (what the log keeps and counts tokens
        on): a 1 MiB body costs the buffer what it logs, not its size."""
        size = len(texts)
        hashes = [text_hash(text) for text in texts]
        prefixes = [text[:COUNT_CHARS] for text in texts]
        cut = [len(text) > COUNT_CHARS for text in texts]
        cost = size * RECORD_BYTES + sum(len(prefix) for prefix in prefixes) * 4  # UTF-8: at most 4 bytes a char
        with self._lock:
            if self._stopping or self._bytes + cost > self._capacity:
                DROPPED.labels("buffer_full").inc(size)
                return
            self._pending.append((datetime.now(UTC), request, servable, hashes, prefixes, cut, predictions))
            self._count += size
            self._bytes += cost
            full = self._count >= self._flush_rows
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mlflask-prediction-log", daemon=True)
                self._thread.start()
                atexit.register(self.close)
        if full:
            self._wake.set()

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._flush_seconds)
            self._wake.clear()
            self.flush()

    def flush(self) -> None:
        with self._lock:
            batch, self._pending, self._count, self._bytes = self._pending, [], 0, 0
        if not batch:
            return
        records = sum(len(entry[3]) for entry in batch)
        try:
            rows = [row for entry in batch for row in self._rows(*entry)]
            keys = predlog.write(self.storage, predlog.LOG_STAGE, rows, self._writer)
        except Exception as exc:  # noqa: BLE001 - the lake being down must not stop serving
            DROPPED.labels("write_failed").inc(records)
            log.warning("prediction log: %d records lost: %s: %s", records, type(exc).__name__, exc)
            return
        WRITTEN.inc(len(rows))
        FLUSHES.inc(len(keys))

    def _rows(self, when, request: dict, servable, hashes, prefixes, cut, predictions) -> list[dict]:
        lengths = servable.count_tokens(prefixes)  # its own tokenizer instance: no state shared with the batcher
        return [
            {
                **request,
                "time": when,
                "prediction_id": prediction["prediction_id"],
                "tokens": tokens,  # of the first COUNT_CHARS characters: a lower bound for a longer text
                "truncated": was_cut or tokens > servable.max_length,
                "label": prediction["label"],
                "score": float(prediction["score"]),
                "text_sha256": digest,
                "text": prefix[: self._text_chars] if self._text_chars else None,
            }
            for digest, prefix, was_cut, tokens, prediction in zip(
                hashes, prefixes, cut, lengths, predictions, strict=True
            )
        ]

    def close(self) -> None:
        """Write what is buffered and stop the writer (a graceful stop's last act)."""
        self._stopping = True
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
        self.flush()


def from_settings(settings):
    """The worker's log, or None under MLFLASK_PREDICTION_LOG=0."""
    if not settings.mlflask_prediction_log:
        return None

    return PredictionLog(
        open_storage(settings),
        settings.mlflask_log_buffer_bytes,
        settings.mlflask_log_flush_rows,
        settings.mlflask_log_flush_seconds,
        settings.mlflask_log_text_chars,
    )
