"""Checks every request passes before its route: the Host it names, and an open bind without a token.

A page on another site can resolve its own name to 127.0.0.1 (DNS rebinding) and so reach a loopback MLFlask
from the user's browser; its requests still carry that site's name in `Host`. A loopback MLFlask therefore answers
only to loopback names, unless MLFLASK_ALLOWED_HOSTS lists others.
"""

from __future__ import annotations

import io

from flask import Flask, current_app, request

from apps.mlflask.errors import ApiError
from mlplatform.settings import is_loopback

_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WRITES = ("POST", "PUT", "DELETE", "PATCH")


def allowed_hosts(settings) -> set[str] | None:
    """Host names this MLFlask answers to; None = any (a non-loopback bind, where the token guards writes)."""
    if settings.mlflask_allowed_hosts:
        names = {name.strip().lower() for name in settings.mlflask_allowed_hosts.split(",") if name.strip()}
        return None if "*" in names else names
    return set(_LOOPBACK_NAMES) if settings.mlflask_is_loopback else None


def _host_name(header: str) -> str:
    """`Host` without its port: "a.example:5001" -> "a.example", "[::1]:5001" -> "::1"."""
    if header.startswith("["):
        return header[1 : header.find("]")].lower() if "]" in header else header.lower()
    return header.rpartition(":")[0].lower() if header.count(":") == 1 else header.lower()


def _bound_chunked_body(limit: int) -> None:
    """A chunked body has no Content-Length, and werkzeug cuts it at MAX_CONTENT_LENGTH without a word (the JSON
    then looks broken): read it here, at most `limit` bytes, and answer 413 past that."""
    environ = request.environ
    if environ.get("CONTENT_LENGTH") or "chunked" not in environ.get("HTTP_TRANSFER_ENCODING", "").lower():
        return
    body = environ["wsgi.input"].read(limit + 1)
    if len(body) > limit:
        raise ApiError(413, f"request body too large (MLFLASK_MAX_BODY={limit} bytes)")
    environ["wsgi.input"], environ["CONTENT_LENGTH"] = io.BytesIO(body), str(len(body))


def init_app(app: Flask) -> None:
    hosts = allowed_hosts(app.extensions["mlflask"].settings)

    @app.before_request
    def _check_host():
        settings = current_app.extensions["mlflask"].settings
        if hosts is not None and _host_name(request.headers.get("Host", "")) not in hosts:
            raise ApiError(400, "this Host is not served here (set MLFLASK_ALLOWED_HOSTS to add it)")
        _bound_chunked_body(settings.mlflask_max_body)
        # `python -m apps.mlflask` refuses such a bind at start; a bare `gunicorn apps.mlflask.wsgi:app -b 0.0.0.0`
        # is caught here, from the address the request came in on.
        listening = request.environ.get("SERVER_NAME", "127.0.0.1")
        if (
            request.method in _WRITES
            and not is_loopback(listening)
            and not settings.mlflask_token
            and not settings.mlflask_allow_open
        ):
            raise ApiError(403, "MLFlask listens beyond loopback without MLFLASK_TOKEN: set it to deploy or remove")
