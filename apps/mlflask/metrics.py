"""Request counts, latencies and errors per model, in Prometheus text format (per worker process)."""

from __future__ import annotations

import os
import threading
from collections import defaultdict

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _labels(**labels: str) -> str:
    body = ",".join(f'{k}="{str(v).replace(chr(92), "").replace(chr(34), "")}"' for k, v in labels.items())
    return "{" + body + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._latency_buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(_BUCKETS))
        self._latency_sum: dict[str, float] = defaultdict(float)
        self._latency_count: dict[str, int] = defaultdict(int)
        self._errors: dict[str, int] = defaultdict(int)
        self._follow: dict[tuple[str, str], int] = defaultdict(int)

    def follow_event(self, outcome: str, model: str) -> None:
        with self._lock:
            self._follow[(outcome, model)] += 1

    def observe(self, endpoint: str, model: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(endpoint, model, status)] += 1
            if status >= 400:
                self._errors[model] += 1
            if endpoint in ("predict", "invocations") and status < 400:
                for i, bound in enumerate(_BUCKETS):
                    if seconds <= bound:
                        self._latency_buckets[model][i] += 1
                self._latency_sum[model] += seconds
                self._latency_count[model] += 1

    def render(self) -> str:
        pid = str(os.getpid())
        lines = [
            "# HELP mlflask_requests_total Requests by endpoint, model and status.",
            "# TYPE mlflask_requests_total counter",
        ]
        with self._lock:
            for (endpoint, model, status), count in sorted(self._requests.items()):
                labels = _labels(endpoint=endpoint, model=model, status=status, pid=pid)
                lines.append(f"mlflask_requests_total{labels} {count}")
            lines += [
                "# HELP mlflask_errors_total Failed requests (4xx/5xx) by model.",
                "# TYPE mlflask_errors_total counter",
            ]
            for model, count in sorted(self._errors.items()):
                lines.append(f"mlflask_errors_total{_labels(model=model, pid=pid)} {count}")
            lines += [
                "# HELP mlflask_follow_events_total Alias-following outcomes (follow, restore, follow_failed).",
                "# TYPE mlflask_follow_events_total counter",
            ]
            for (outcome, model), count in sorted(self._follow.items()):
                lines.append(f"mlflask_follow_events_total{_labels(outcome=outcome, model=model, pid=pid)} {count}")
            lines += [
                "# HELP mlflask_predict_latency_seconds Latency of successful predictions by model.",
                "# TYPE mlflask_predict_latency_seconds histogram",
            ]
            for model, buckets in sorted(self._latency_buckets.items()):
                for bound, count in zip(_BUCKETS, buckets, strict=True):
                    labels = _labels(model=model, pid=pid, le=bound)
                    lines.append(f"mlflask_predict_latency_seconds_bucket{labels} {count}")
                count, total = self._latency_count[model], self._latency_sum[model]
                every = _labels(model=model, pid=pid, le="+Inf")
                lines.append(f"mlflask_predict_latency_seconds_bucket{every} {count}")
                lines.append(f"mlflask_predict_latency_seconds_sum{_labels(model=model, pid=pid)} {total:.6f}")
                lines.append(f"mlflask_predict_latency_seconds_count{_labels(model=model, pid=pid)} {count}")
        return "\n".join(lines) + "\n"
