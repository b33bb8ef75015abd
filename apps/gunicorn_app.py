"""Running a WSGI app under gunicorn from `python -m ...`, shared by MLFlask and MLDash."""

from __future__ import annotations

from collections.abc import Callable

from gunicorn.app.base import BaseApplication


class GunicornApp(BaseApplication):
    """gunicorn with options given in code; `load` builds the WSGI app inside each worker."""

    def __init__(self, load: Callable, options: dict):
        self._load = load
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self._load()
