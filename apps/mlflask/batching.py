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


class _Alone:
    """A job that runs on the batcher's thread by itself (pre-tokenised input cannot share a batch)."""

    def __init__(self, job: Callable[[], object]):
        self.job = job


class MicroBatcher:
    """Collects texts from concurrent callers and predicts them together on one background thread.

    A lone request is run at once. Only while other requests are in flight does the batcher wait, and at
    most `max_wait_s`, for them to join, up to `max_batch` texts. The queue holds at most `max_queue` requests;
    beyond that, or past `timeout_s`, a request is refused with `Overloaded` instead of piling up. `close()`
    ends the thread, so a replaced model's servable can be freed. If a batch fails, each request in it is run
    again alone, so one bad input fails only its own request.
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
        self._held = None  # a job taken off the queue while collecting a batch: it runs next, alone
        self._thread = threading.Thread(target=self._run, name="micro-batcher", daemon=True)
        self._thread.start()

    def submit(self, texts: list[str]) -> list:
        return self._submit(texts)

    def run_alone(self, job: Callable[[], object]):
        """`job()` on the batcher's thread, under the same queue bound and timeout as predictions."""
        return self._submit(_Alone(job))

    def _submit(self, texts) -> list:
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
        first, self._held = self._held or self._queue.get(), None
        if first is _STOP:
            return None
        batch = [first]
        if isinstance(first[0], _Alone):
            return batch
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
            if isinstance(item[0], _Alone):
                self._held = item
                break
            batch.append(item)
            size += len(item[0])
        return batch

    @staticmethod
    def _answer(future: Future, job: Callable[[], object]) -> None:
        try:
            future.set_result(job())
        except Exception as exc:  # noqa: BLE001 - the caller gets the error, never hangs
            future.set_exception(exc)

    def _run(self) -> None:
        while (batch := self._collect()) is not None:
            batch = [(texts, future) for texts, future in batch if future.set_running_or_notify_cancel()]
            if not batch:
                continue
            if isinstance(batch[0][0], _Alone):
                self._answer(batch[0][1], batch[0][0].job)
                continue
            texts = [text for item_texts, _ in batch for text in item_texts]
            try:
                results = self._predict(texts)
            except Exception as exc:  # noqa: BLE001 - find whose input failed: each request again, alone
                if len(batch) == 1:
                    batch[0][1].set_exception(exc)
                    continue
                for item_texts, future in batch:
                    self._answer(future, lambda item_texts=item_texts: self._predict(item_texts))
                continue
            start = 0
            for item_texts, future in batch:
                future.set_result(results[start : start + len(item_texts)])
                start += len(item_texts)
        self._predict = None  # drop the servable reference with the thread
        if self._held is not None and self._held[1].set_running_or_notify_cancel():
            self._held[1].set_exception(Closed("the model was replaced"))
        while True:  # anything left behind the stop marker is told to go to the new model, never left waiting
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP and item[1].set_running_or_notify_cancel():
                item[1].set_exception(Closed("the model was replaced"))
