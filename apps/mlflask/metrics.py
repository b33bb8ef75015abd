"""Prometheus metrics from prometheus_client. Under gunicorn they run in multiprocess mode
(PROMETHEUS_MULTIPROC_DIR, set by `python -m apps.mlflask`), so a scrape adds up every worker."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter("mlflask_requests", "Requests by endpoint, model and status.", ["endpoint", "model", "status"])
ERRORS = Counter("mlflask_errors", "Failed requests (4xx/5xx) by model.", ["model"])
LATENCY = Histogram(
    "mlflask_predict_latency_seconds",
    "Latency of successful predictions by model.",
    ["model"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FOLLOW = Counter(
    "mlflask_follow_events", "Alias-following outcomes (follow, restore, follow_failed).", ["outcome", "model"]
)
LOADED = Gauge(
    "mlflask_loaded_models",
    "Models loaded in memory (each with one batcher thread), summed over live workers.",
    multiprocess_mode="livesum",
)
PREDICT_ENDPOINTS = {"predict", "invocations", "v2_infer"}


class Metrics:
    """Records requests; `model` must already be a deployed name, "" or "unknown" (never raw input)."""

    def __init__(self, multiprocess_dir: Path | None = None):
        self._dir = multiprocess_dir

    def observe(self, endpoint: str, model: str, status: int, seconds: float) -> None:
        REQUESTS.labels(endpoint, model, str(status)).inc()
        if status >= 400:
            ERRORS.labels(model).inc()
        elif endpoint in PREDICT_ENDPOINTS:
            LATENCY.labels(model).observe(seconds)

    def follow_event(self, outcome: str, model: str) -> None:
        FOLLOW.labels(outcome, model).inc()

    def _registry(self):
        if self._dir is None:
            return REGISTRY
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self._dir))
        return registry

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self._registry()), CONTENT_TYPE_LATEST

    def total(self, sample: str, **labels: str) -> float:
        """The sum over the workers of one sample (e.g. `mlflask_shadow_texts_total`) with these labels."""
        return sum(
            s.value
            for family in self._registry().collect()
            for s in family.samples
            if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items())
        )


def mark_worker_dead(pid: int, multiprocess_dir: Path) -> None:
    """gunicorn's child_exit hook: a dead worker's live gauges go, its counters stay summed."""
    multiprocess.mark_process_dead(pid, path=str(multiprocess_dir))
