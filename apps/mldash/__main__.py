"""Run MLDash locally under gunicorn: `python -m apps.mldash` (MLDASH_HOST, MLDASH_PORT, default 8050)."""

from __future__ import annotations

import os
import sys

from mlplatform.errors import PlatformError
from mlplatform.gunicorn_app import GunicornApp


def main() -> int:
    from apps.mldash.app import create_app

    try:
        app = create_app()
    except PlatformError as exc:
        print(f"mldash: error: {exc}", file=sys.stderr)
        return 1
    host = os.environ.get("MLDASH_HOST", "127.0.0.1")
    port = os.environ.get("MLDASH_PORT", "8050")
    options = {"bind": f"{host}:{port}", "workers": 1, "worker_class": "gthread", "threads": 8, "timeout": 300}
    GunicornApp(lambda: app.server, options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
