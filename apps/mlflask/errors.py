"""HTTP errors: every failure leaves as JSON with a 4xx/5xx status, never a traceback or an internal address.

The body is `{"error": "..."}`, except on /invocations, where it is MLflow's `{"error_code", "message"}`.
"""

from __future__ import annotations

import logging

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from apps.mlflask.store import StoreCorrupt
from mlplatform.errors import ConfigError, PlatformError, redact
from mlplatform.registry.runs import RunNotFound
from mlplatform.registry.tracking import NotInTracking, TrackingUnavailable

log = logging.getLogger(__name__)
_MLFLOW_CODES = {400: "BAD_REQUEST", 401: "UNAUTHENTICATED", 404: "RESOURCE_DOES_NOT_EXIST", 413: "BAD_REQUEST"}
_MLFLOW_CODES |= {409: "RESOURCE_ALREADY_EXISTS", 422: "INVALID_PARAMETER_VALUE", 503: "TEMPORARILY_UNAVAILABLE"}


class ApiError(Exception):
    def __init__(self, status: int, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.retry_after = retry_after


def status_for(exc: PlatformError) -> int:
    """Map domain errors to HTTP: unknown runs and models are 404, bad references 422, an unreachable MLflow 503."""
    if isinstance(exc, RunNotFound | NotInTracking):
        return 404
    if isinstance(exc, ConfigError):
        return 422
    if isinstance(exc, TrackingUnavailable):
        return 503
    return 400


def public(message: str) -> str:
    """What a caller may read: no internal URIs (nor the passwords in them), bounded length."""
    return redact(message)[:500]


def respond(status: int, message: str, retry_after: int | None = None):
    if request.path == "/invocations":
        body = jsonify(error_code=_MLFLOW_CODES.get(status, "INTERNAL_ERROR"), message=message)
    else:
        body = jsonify(error=message)
    response = body, status
    if retry_after is not None:
        return body, status, {"Retry-After": str(retry_after)}
    return response


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return respond(exc.status, public(exc.message), exc.retry_after)

    @app.errorhandler(PlatformError)
    def _platform_error(exc: PlatformError):
        status = status_for(exc)
        if status >= 500:
            log.warning("%s: %s", type(exc).__name__, exc)  # the detail stays in the server log
            return respond(status, "MLflow is unavailable right now; retry later", retry_after=10)
        return respond(status, public(str(exc)))

    @app.errorhandler(StoreCorrupt)
    def _store_corrupt(exc: StoreCorrupt):
        log.error("%s", exc)  # the operator must repair or remove it; /health keeps answering meanwhile
        return respond(503, "the model store's state cannot be read; the operator must repair it", retry_after=30)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        messages = {413: "request body too large", 404: "no such endpoint", 405: "method not allowed"}
        return respond(exc.code, messages.get(exc.code, exc.name))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")  # the traceback stays in the server log, never in the response
        return respond(500, "internal error")
