"""Run MLFlask under gunicorn: `python -m apps.mlflask` (MLFLASK_HOST, MLFLASK_PORT, MLFLASK_WORKERS)."""

from __future__ import annotations

import os
import sys

from gunicorn.app.base import BaseApplication

from apps.mlflask.config import FlaskSettings
from mlplatform.errors import PlatformError


class _Server(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from apps.mlflask.wsgi import app

        return app


def main() -> int:
    try:
        settings = FlaskSettings.from_env()
    except PlatformError as exc:
        print(f"mlflask: error: {exc}", file=sys.stderr)
        return 1
    _Server(
        {
            "bind": f"{settings.host}:{settings.port}",
            "workers": int(os.environ.get("MLFLASK_WORKERS", "1")),
            "worker_class": "gthread",
            "threads": int(os.environ.get("MLFLASK_THREADS", "8")),
            "timeout": 300,
            "graceful_timeout": 30,
            "accesslog": "-",
        }
    ).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
