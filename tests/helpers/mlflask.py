"""Reading a live MLFlask the way a scraper or a careless client would."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families


def metric(url: str, name: str, **labels) -> float:
    """The sum of `name`'s samples with these labels in MLFlask's /metrics (every worker's, summed there)."""
    total = 0.0
    for family in text_string_to_metric_families(requests.get(url + "/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def post_raw(url: str, raw: str) -> requests.Response:
    """POST a JSON body written by hand (invalid JSON included)."""
    return requests.post(url, data=raw.encode(), headers={"Content-Type": "application/json"}, timeout=60)
