"""HTTP errors: every failure leaves as JSON `{"error": "..."}` with a 4xx/5xx status, never a traceback."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from mlplatform.errors import ConfigError, PlatformError
from mlplatform.runs import RunNotFound
from mlplatform.tracking import NotInTracking, TrackingUnavailable

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def status_for(exc: PlatformError) -> int:
    """Map domain errors to HTTP: unknown runs and models are 404, bad references 422, an unreachable MLflow 503."""
    if isinstance(exc, RunNotFound | NotInTracking):
        return 404
    if isinstance(exc, ConfigError):
        return 422
    if isinstance(exc, TrackingUnavailable):
        return 503
    return 400


def init_app(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return jsonify(error=exc.message), exc.status

    @app.errorhandler(PlatformError)
    def _platform_error(exc: PlatformError):
        return jsonify(error=str(exc)), status_for(exc)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        messages = {413: "request body too large", 404: "no such endpoint", 405: "method not allowed"}
        return jsonify(error=messages.get(exc.code, exc.description or exc.name)), exc.code

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unexpected error")  # the traceback stays in the server log, never in the response
        return jsonify(error=f"internal error ({type(exc).__name__})"), 500
