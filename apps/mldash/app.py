"""MLDash: the Dash object and its Flask `server`.

`python -m apps.mldash` runs it locally; gunicorn serves `apps.mldash.app:server`. The module-level `app`
and `server` are built on first access, so importing this module reads no environment and connects nowhere.

Reachable beyond loopback (MLDASH_HOST), MLDash requires a login (MLDASH_USERS, HTTP basic auth). It answers only
the Host names of MLDASH_ALLOWED_HOSTS, so a DNS-rebinding page cannot drive it from a victim's browser.
"""

from __future__ import annotations

import secrets
from importlib.resources import files

from dash import Dash
from flask import Flask, Response, request

from apps.mldash import callbacks, layout
from apps.mldash.backend import Backend
from apps.mldash.login import require_login
from mlplatform.errors import ConfigError
from mlplatform.settings import Settings


def create_app(settings: Settings | None = None) -> Dash:
    settings = settings or Settings.load()  # the app factory is an entry point (gunicorn, tests)
    app = Dash(
        __name__,
        title="MLDash",
        suppress_callback_exceptions=False,
        external_stylesheets=[BOOTSTRAP_CSS_URL],
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    app.server.secret_key = secrets.token_hex(32)  # per process: MLDash keeps nothing in the session
    app.server.config["MAX_CONTENT_LENGTH"] = MAX_BODY
    _serve_bootstrap_css(app.server)
    app.server.add_url_rule(HEALTH_URL, "health", lambda: {"status": "ok"})
    _protect(app, settings)
    app.layout = layout.page
    callbacks.register(app, Backend.from_settings(settings))
    return app


BOOTSTRAP_CSS_URL = "/_mldash/bootstrap.min.css"
MAX_BODY = 1 << 20  # a callback carries at most four sentences and a few ids: 1 MiB is ample
HEALTH_URL = "/_mldash/health"  # for container health checks: no login, and it tells nothing but "ok"


def _serve_bootstrap_css(server: Flask) -> None:
    """Bootstrap's stylesheet from the installed bootstrap-flask package: MLDash works offline, with no CDN."""
    css = files("flask_bootstrap").joinpath("static/bootstrap5/css/bootstrap.min.css").read_bytes()

    @server.get(BOOTSTRAP_CSS_URL)
    def _bootstrap_css():
        return Response(css, mimetype="text/css", headers={"Cache-Control": "public, max-age=86400"})


def _protect(app: Dash, settings: Settings) -> None:
    logins = settings.mldash_logins
    if logins:
        require_login(app.server, logins, public=(HEALTH_URL,))
    elif not settings.mldash_is_loopback:
        raise ConfigError(
            f"MLDASH_HOST={settings.mldash_host} is reachable from other machines: set MLDASH_USERS=user:password"
        )
    _allow_hosts(app.server, {h.strip().lower() for h in settings.mldash_allowed_hosts.split(",") if h.strip()})


def _allow_hosts(server: Flask, allowed: set[str]) -> None:
    if "*" in allowed:
        return

    @server.before_request
    def _check_host():
        host = request.host.lower()
        name = host[1 : host.index("]")] if host.startswith("[") else host.rsplit(":", 1)[0]
        if name not in allowed:
            return "Unknown Host header: add it to MLDASH_ALLOWED_HOSTS\n", 400, {"Content-Type": "text/plain"}
        return None


def __getattr__(name: str):
    if name in ("app", "server"):
        app = create_app()
        globals().update(app=app, server=app.server)
        return globals()[name]
    raise AttributeError(name)
