"""Shadow and canary traffic for a served name.

Each arm is an ordinary deployment named `<name>.shadow` or `<name>.canary` (downloaded, verified, loaded and
alias-followed like any other), and the served name's record holds the policy: `{"model_uri", "share"}` for a
shadow, `{"model_uri", "weight"}` for a canary.

- Canary: a request for `<name>` is answered by the canary arm with probability `weight`; the response's
  `version` says which one answered.
- Shadow: with probability `share`, the request's texts are also sent to the shadow arm, off the request path: the
  answer never waits for it and never comes from it. A bounded queue feeds one thread per worker; when it is full
  the shadow work is dropped (and counted), never the request.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time

from prometheus_client import Counter, Histogram

log = logging.getLogger(__name__)
ARMS = {"shadow": "share", "canary": "weight"}  # kind -> the policy's traffic field
SHADOW_QUEUE = 64  # requests waiting for the shadow model per worker; beyond it shadow work is dropped

SHADOW_TEXTS = Counter("mlflask_shadow_texts", "Texts the shadow model also scored, by served name.", ["model"])
SHADOW_AGREED = Counter("mlflask_shadow_agreed", "Shadow texts whose label matched the answer.", ["model"])
SHADOW_DROPPED = Counter("mlflask_shadow_dropped", "Shadow requests dropped under back-pressure.", ["model"])
SHADOW_LATENCY = Histogram(
    "mlflask_shadow_latency_seconds",
    "Latency of the shadow model's predictions, by served name.",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
CANARY_ANSWERS = Counter("mlflask_canary_answers", "Answers by served name and arm (main, canary).", ["model", "arm"])


def arm_name(name: str, kind: str) -> str:
    return f"{name}.{kind}"


class Traffic:
    """Routes a served name's requests between its arms and feeds its shadow (one per worker)."""

    def __init__(self, models, rng: random.Random | None = None):
        self._models = models
        self._rng = rng or random.Random()
        self._queue: queue.Queue = queue.Queue(SHADOW_QUEUE)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def answering(self, name: str, record: dict) -> str:
        """The deployment that answers this request for `name`: the canary arm by its weight, else `name`."""
        canary = record.get("canary")
        if canary and self._rng.random() < canary["weight"]:
            CANARY_ANSWERS.labels(name, "canary").inc()
            return arm_name(name, "canary")
        if canary:
            CANARY_ANSWERS.labels(name, "main").inc()
        return name

    def mirror(self, name: str, record: dict, texts: list[str], predictions: list[dict]) -> None:
        """Send the texts to `name`'s shadow with probability `share`; never blocks, never raises."""
        shadow = record.get("shadow")
        if not shadow or self._rng.random() >= shadow["share"]:
            return
        self._start()
        try:
            self._queue.put_nowait((name, texts, [p["label"] for p in predictions]))
        except queue.Full:
            SHADOW_DROPPED.labels(name).inc()

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="mlflask-shadow", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            name, texts, labels = self._queue.get()
            try:
                loaded = self._models.get(arm_name(name, "shadow"))
                started = time.perf_counter()
                predictions = loaded.batcher.submit(texts)
                SHADOW_LATENCY.labels(name).observe(time.perf_counter() - started)
                SHADOW_TEXTS.labels(name).inc(len(texts))
                SHADOW_AGREED.labels(name).inc(sum(p["label"] == a for p, a in zip(predictions, labels, strict=True)))
            except Exception as exc:  # noqa: BLE001 - a failing shadow must never touch live traffic
                SHADOW_DROPPED.labels(name).inc()
                log.warning("shadow of %s failed: %s", name, type(exc).__name__)


def shadow_stats(metrics, name: str) -> dict:
    """Agreement and latency of `name`'s shadow so far, summed over the workers."""
    texts = metrics.total("mlflask_shadow_texts_total", model=name)
    agreed = metrics.total("mlflask_shadow_agreed_total", model=name)
    count = metrics.total("mlflask_shadow_latency_seconds_count", model=name)
    seconds = metrics.total("mlflask_shadow_latency_seconds_sum", model=name)
    return {
        "texts": int(texts),
        "agreement": round(agreed / texts, 4) if texts else None,
        "dropped": int(metrics.total("mlflask_shadow_dropped_total", model=name)),
        "mean_latency_ms": round(1000 * seconds / count, 2) if count else None,
    }
