"""Run MLFlask under gunicorn: `python -m apps.mlflask` (MLFLASK_HOST, MLFLASK_PORT, MLFLASK_WORKERS)."""

from __future__ import annotations

import sys

from mlplatform.cli import load_settings
from mlplatform.gunicorn_app import GunicornApp


def _load():
    from apps.mlflask.wsgi import app

    return app


def main() -> int:
    settings = load_settings("mlflask")
    options = {
        "bind": f"{settings.mlflask_host}:{settings.mlflask_port}",
        "workers": settings.mlflask_workers,
        "worker_class": "gthread",
        "threads": settings.mlflask_threads,
        "timeout": 300,
        "graceful_timeout": 30,
        "accesslog": "-",
    }
    GunicornApp(_load, options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
