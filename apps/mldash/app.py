"""MLDash: the Dash object and its Flask `server`.

`python -m apps.mldash` runs it locally; gunicorn serves `apps.mldash.app:server`. The module-level `app`
and `server` are built on first access, so importing this module reads no environment and connects nowhere.
"""

from __future__ import annotations

from dash import Dash

from apps.mldash import callbacks, layout
from apps.mldash.backend import Backend
from mlplatform.settings import Settings


def create_app(settings: Settings | None = None) -> Dash:
    app = Dash(__name__, title="MLDash", suppress_callback_exceptions=False)
    app.layout = layout.page
    callbacks.register(app, Backend.from_settings(settings))
    return app


def __getattr__(name: str):
    if name in ("app", "server"):
        app = create_app()
        globals().update(app=app, server=app.server)
        return globals()[name]
    raise AttributeError(name)
