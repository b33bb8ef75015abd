"""Run MLFlask under gunicorn: `python -m apps.mlflask` (MLFLASK_HOST, MLFLASK_PORT, MLFLASK_WORKERS)."""

from __future__ import annotations

import os
import sys

from apps.mlflask.config import FlaskSettings
from mlplatform.errors import PlatformError
from mlplatform.gunicorn_app import GunicornApp


def _load():
    from apps.mlflask.wsgi import app

    return app


def main() -> int:
    try:
        settings = FlaskSettings.from_env()
    except PlatformError as exc:
        print(f"mlflask: error: {exc}", file=sys.stderr)
        return 1
    options = {
        "bind": f"{settings.host}:{settings.port}",
        "workers": int(os.environ.get("MLFLASK_WORKERS", "1")),
        "worker_class": "gthread",
        "threads": int(os.environ.get("MLFLASK_THREADS", "8")),
        "timeout": 300,
        "graceful_timeout": 30,
        "accesslog": "-",
    }
    GunicornApp(_load, options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
