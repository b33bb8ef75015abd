"""Run MLDash locally under gunicorn: `python -m apps.mldash` (MLDASH_HOST, MLDASH_PORT, default 8050)."""

from __future__ import annotations

import sys

from apps.gunicorn_app import GunicornApp
from mlplatform.cli import load_settings
from mlplatform.errors import PlatformError


def main() -> int:
    from apps.mldash.app import create_app

    settings = load_settings("mldash")
    try:
        app = create_app(settings)
    except PlatformError as exc:
        print(f"mldash: error: {exc}", file=sys.stderr)
        return 1
    bind = f"{settings.mldash_host}:{settings.mldash_port}"
    options = {"bind": bind, "workers": 1, "worker_class": "gthread", "threads": 8, "timeout": 300}
    GunicornApp(lambda: app.server, options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
