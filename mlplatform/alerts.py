"""Alerts that leave the platform: a JSON POST to ALERT_WEBHOOK_URL on drift and on a refused or failed promotion.

The body carries Slack's `text` (an incoming webhook shows it as is) beside the structured fields, so one URL can
be Slack, Mattermost, or a receiver of your own. An alert never fails the run that raises it: a webhook that is
down or slow is logged (its host only: a webhook URL often carries its token in the path) and counted, and the
run goes on.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

import requests

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 5.0
_counts = {"sent": 0, "failed": 0}
_lock = threading.Lock()


def counts() -> dict[str, int]:
    """How many alerts this process sent and failed to send."""
    with _lock:
        return dict(_counts)


def _count(outcome: str) -> None:
    with _lock:
        _counts[outcome] += 1


def send_alert(url: str | None, event: str, text: str, **fields) -> str:
    """POST `{"text", "event", **fields}` to `url`; returns "sent", "failed" or "off" (no URL). Never raises."""
    if not url:
        return "off"
    body = {"text": f"[mlplatform] {text}", "event": event, **fields}
    try:
        answer = requests.post(url, json=body, timeout=TIMEOUT_SECONDS, allow_redirects=False)
        if answer.status_code >= 300:
            raise requests.HTTPError(f"answered {answer.status_code}")
    except Exception as exc:  # noqa: BLE001 - an alert must never fail the run that raises it
        _count("failed")
        reason = type(exc).__name__ if not isinstance(exc, requests.HTTPError) else str(exc)
        log.warning("alert %r not delivered to %s: %s", event, urlsplit(url).hostname, reason)
        return "failed"
    _count("sent")
    log.info("alert %r sent to %s", event, urlsplit(url).hostname)
    return "sent"
