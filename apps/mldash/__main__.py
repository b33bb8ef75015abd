"""Run MLDash under gunicorn: `python -m apps.mldash`.

Configured by environment variables (env/example.env lists them all): MLDASH_HOST (127.0.0.1), MLDASH_PORT (8050),
MLDASH_USERS (user:password,..., required off loopback), MLFLASK_URL, MLFLOWSERVER_URL, MLFLOW_EXP_NAME.
"""

from __future__ import annotations

import argparse
import sys

from apps.gunicorn_app import GunicornApp
from apps.whole_requests import WORKER, WholeRequests
from mlplatform.cli import load_settings
from mlplatform.errors import PlatformError


def main(argv: list[str] | None = None) -> int:
    # Configured by environment variables only; the parser gives --help (it must not start the server).
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    from apps.mldash.app import MAX_BODY, create_app

    settings = load_settings("mldash")
    try:
        app = create_app(settings)
    except PlatformError as exc:
        print(f"mldash: error: {exc}", file=sys.stderr)
        return 1
    bind = f"{settings.mldash_host}:{settings.mldash_port}"
    options = {"bind": bind, "workers": 1, "worker_class": WORKER, "timeout": 300}  # slow clients wait in its loop
    GunicornApp(lambda: WholeRequests(app.server, max_body=MAX_BODY, client_timeout=30, threads=8), options).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
