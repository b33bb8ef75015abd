"""Micro-batching: concurrent predict requests for one model share a single forward pass."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

_STOP = object()


class Overloaded(Exception):
    """The batcher cannot take or finish this request in time: the caller should retry later (HTTP 503)."""


class Closed(Overloaded):
    """This batcher's model was replaced or removed after the caller looked it up: look it up again."""


class MicroBatcher:
    """Collects texts from concurrent callers and predicts them together on one background thread.

    A lone request is run at once. Only while other requests are in flight does the batcher wait, and at
    most `max_wait_s`, for them to join, up to `max_batch` texts. The queue holds at most `max_queue` requests;
    beyond that, or past `timeout_s`, a request is refused with `Overloaded` instead of piling up. `close()`
    ends the thread, so a replaced model's predictor can be freed.
    """

    def __init__(
        self,
        predict: Callable[[list[str]], list],
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        max_queue: int = 256,
        timeout_s: float = 60.0,
    ):
        self._predict = predict
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._timeout_s = timeout_s
        self._queue: queue.Queue = queue.Queue(maxsize=max_queue)
        self._in_flight = 0
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str]) -> list:
        future: Future = Future()
        with self._lock:  # the put is under the lock too: nothing can be queued behind close()'s stop marker
            if self._closed:
                raise Closed("the model was replaced")
            try:
                self._queue.put_nowait((texts, future))
            except queue.Full:
                raise Overloaded("the prediction queue is full") from None
            self._in_flight += 1
        try:
            try:
                return future.result(self._timeout_s)
            except FutureTimeout:
                future.cancel()
                raise Overloaded(f"no prediction within {self._timeout_s:g}s") from None
        finally:
            with self._lock:
                self._in_flight -= 1

    def close(self) -> None:
        """Stop the thread once the requests already queued are answered."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)  # blocks only while the queue is full, which the worker is draining

    def _collect(self) -> list | None:
        first = self._queue.get()
        if first is _STOP:
            return None
        batch = [first]
        size = len(first[0])
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
            if item is _STOP:
                self._queue.put(_STOP)  # answer this batch, then stop
                break
            batch.append(item)
            size += len(item[0])
        return batch

    def _run(self) -> None:
        while (batch := self._collect()) is not None:
            batch = [(texts, future) for texts, future in batch if future.set_running_or_notify_cancel()]
            if not batch:
                continue
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
        self._predict = None  # drop the predictor reference with the thread
        while True:  # anything left behind the stop marker is told to go to the new model, never left waiting
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP and item[1].set_running_or_notify_cancel():
                item[1].set_exception(Closed("the model was replaced"))
