"""Servers the tests start as subprocesses, through the platform's one starter (`mlplatform.launch.Service`):
each on a free loopback port, in its own process group, healthy once its health URL answers."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from mlplatform.launch import Service, free_port, stop, wait_until_healthy
from mlplatform.settings import Settings

REPO = Path(__file__).resolve().parents[2]
PLATFORM_VARS = [name.upper() for name in Settings.model_fields] + [
    "MLFLOW_TRACKING_URI",
    "MLFLOW_EXPERIMENT_NAME",
    "AWS_PROFILE",
]

__all__ = ["PLATFORM_VARS", "env_without", "free_port", "start_mlflask", "stop_process", "wait_for_http"]


def env_without(*names: str) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in names}


def wait_for_http(url: str, process=None, timeout: float = 90.0) -> None:
    """Poll `url` until it answers 200, the process dies, or `timeout` passes (a bounded loop)."""
    wait_until_healthy(url, process, timeout)


def stop_process(process, timeout: float = 15.0) -> None:
    stop(process, signal.SIGTERM, timeout)


def start_mlflask(tmp_path: Path, env: dict, workers: int = 2, store: Path | None = None, port: int | None = None):
    """`python -m apps.mlflask` (the README's and compose's command) on a free loopback port; returns
    (url, process, log path, store)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    store = store or tmp_path / "store"
    port = port or free_port()
    log_path = tmp_path / f"mlflask-{port}.log"
    full_env = {
        **env_without(*PLATFORM_VARS),
        "MLFLASK_WORKERS": str(workers),
        "MLFLASK_PORT": str(port),
        "LAKE_DIR": str(tmp_path / "lake"),  # the prediction log's, unless the test names a lake
        **env,
        "MLFLASK_STORE": str(store),
    }
    url = f"http://127.0.0.1:{port}"
    service = Service("mlflask", [sys.executable, "-m", "apps.mlflask"], f"{url}/health", full_env, log_path, REPO)
    service.start(timeout=90)
    return url, service.process, log_path, store


def start_mlflow_server(folder: Path, env: dict, artifacts: str) -> tuple[str, object]:
    """A real `mlflow server` (sqlite in `folder`, artifacts proxied to `artifacts`); returns (url, process)."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--artifacts-destination", artifacts]
    service = Service("mlflow server", argv + ["--workers", "1"], f"{url}/health", env, folder / "server.log", folder)
    service.start(timeout=120)
    return url, service.process
