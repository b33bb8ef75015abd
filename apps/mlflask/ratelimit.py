"""A per-sender token bucket, per worker: how much one client may post per minute (feedback labels)."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

_MAX_SENDERS = 10_000  # buckets kept; the least recently seen sender is forgotten first (a full bucket again)


class RateLimiter:
    def __init__(self, per_minute: int, clock=time.monotonic):
        self._rate = per_minute / 60.0
        self._burst = float(per_minute)
        self._clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # sender -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, sender: str, cost: int) -> float:
        """Spend `cost` of `sender`'s allowance: 0 when granted, else the seconds until it would be."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.pop(sender, (self._burst, now))
            tokens = min(self._burst, tokens + (now - then) * self._rate)
            wait = 0.0 if cost <= tokens else (cost - tokens) / self._rate
            self._buckets[sender] = (tokens - cost if wait == 0 else tokens, now)
            if len(self._buckets) > _MAX_SENDERS:
                self._buckets.popitem(last=False)
        return wait
