"""The MLFlask that `jobs/run_pipeline.py` starts when nothing answers at MLFLASK_URL (a local address)."""

from __future__ import annotations

import sys
from urllib.parse import urlparse

from mlplatform.errors import ConfigError
from mlplatform.launch import Service
from mlplatform.settings import Settings


def local_mlflask(settings: Settings) -> Service:
    """`python -m apps.mlflask` on MLFLASK_URL's port, with this run's settings (env files included)."""
    parsed = urlparse(settings.mlflask_url)
    if parsed.hostname not in ("127.0.0.1", "localhost"):
        raise ConfigError(
            f"nothing answers at MLFLASK_URL={settings.mlflask_url}, and only a local URL can be started here"
        )
    port = str(parsed.port or 80)
    env = settings.child_environ(MLFLASK_HOST="127.0.0.1", MLFLASK_PORT=port)
    argv = [sys.executable, "-m", "apps.mlflask"]
    return Service("the local MLFlask", argv, f"{settings.mlflask_url}/health", env=env, log=settings.mlflask_log)
