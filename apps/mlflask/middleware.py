"""What every request goes through: a request id, timing and metrics, failed requests logged, and the bearer
token of the routes that change the deployed set."""

from __future__ import annotations

import hmac
import logging
import re
import time
import uuid
from functools import wraps

from flask import Blueprint, g, request

from apps.mlflask.errors import ApiError
from apps.mlflask.service import context
from apps.mlflask.store import StoreCorrupt

bp = Blueprint("middleware", __name__)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")


def _check_bearer(token: str) -> None:
    given = request.headers.get("Authorization", "")
    if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        raise ApiError(401, "missing or invalid bearer token")


def require_token(view):
    """When MLFLASK_TOKEN is set, changing the deployed set needs `Authorization: Bearer <token>`."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        token = context().settings.mlflask_token
        if token:
            _check_bearer(token)
        return view(*args, **kwargs)

    return wrapper


def require_feedback_token(view):
    """POST /feedback takes MLFLASK_FEEDBACK_TOKEN, never the deploy token: whoever sends labels cannot deploy.
    With neither token set (a loopback MLFlask), it is open like the rest."""

    @wraps(view)
    def wrapper(*args, **kwargs):
        settings = context().settings
        if settings.mlflask_feedback_token:
            _check_bearer(settings.mlflask_feedback_token)
        elif settings.mlflask_token:
            raise ApiError(403, "feedback is off: set MLFLASK_FEEDBACK_TOKEN (it does not take the deploy token)")
        return view(*args, **kwargs)

    return wrapper


@bp.before_app_request
def _start_timer():
    g.started = time.perf_counter()
    g.model = ""
    given = request.headers.get("X-Request-ID", "")
    g.request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex  # the caller's, if it is sane


@bp.after_app_request
def _record(response):
    ctx = context()
    g.request_id = g.get("request_id") or uuid.uuid4().hex  # a request refused before _start_timer gets one too
    response.headers["X-Request-ID"] = g.request_id
    blueprint, _, endpoint = (request.endpoint or "unknown").rpartition(".")
    endpoint = f"v2_{endpoint}" if blueprint == "v2" else endpoint  # /ready and /v2/health/ready stay apart
    model = g.get("model", "")
    try:
        label = model if model in ctx.store.read_state() else ("unknown" if model else "")
    except StoreCorrupt:
        label = "unknown" if model else ""
    ctx.metrics.observe(endpoint, label, response.status_code, time.perf_counter() - g.get("started", 0.0))
    if response.status_code >= 400 and endpoint not in ("metrics", "unknown"):
        body = response.get_json(silent=True) or {}
        try:
            ctx.store.log(
                "failed_request",
                endpoint=endpoint,
                status=response.status_code,
                model=label,
                error=str(body.get("error") or body.get("message") or "")[:300],
                request_id=g.get("request_id", ""),
            )
        except OSError as exc:  # a full disk must not turn the caller's 4xx into a 500
            logging.getLogger(__name__).warning("could not log a failed request: %s", exc)
    return response
