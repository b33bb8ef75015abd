"""Micro-batching: concurrent predict requests for one model share a single forward pass."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future


class MicroBatcher:
    """Collects texts from concurrent callers and predicts them together on one background thread.

    A lone request is run at once. Only while other requests are in flight does the batcher wait, and at
    most `max_wait_s`, for them to join, up to `max_batch` texts.
    """

    def __init__(self, predict: Callable[[list[str]], list], max_batch: int = 32, max_wait_s: float = 0.005):
        self._predict = predict
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: queue.Queue[tuple[list[str], Future]] = queue.Queue()
        self._in_flight = 0
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str], timeout: float = 120.0) -> list:
        future: Future = Future()
        with self._lock:
            self._in_flight += 1
        try:
            self._queue.put((texts, future))
            return future.result(timeout)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _collect(self) -> list[tuple[list[str], Future]]:
        batch = [self._queue.get()]
        size = len(batch[0][0])
        deadline = time.monotonic() + self._max_wait_s
        while size < self._max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                with self._lock:
                    others_pending = self._in_flight > len(batch)
                remaining = deadline - time.monotonic()
                if not others_pending or remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            batch.append(item)
            size += len(item[0])
        return batch

    def _run(self) -> None:
        while True:
            batch = self._collect()
            texts = [text for item_texts, _ in batch for text in item_texts]
            try:
                results = self._predict(texts)
            except Exception as exc:  # every waiting caller gets the error, none hangs
                for _, future in batch:
                    future.set_exception(exc)
                continue
            start = 0
            for item_texts, future in batch:
                future.set_result(results[start : start + len(item_texts)])
                start += len(item_texts)
