"""Run MLFlask under gunicorn: `python -m apps.mlflask` (MLFLASK_HOST, MLFLASK_PORT, MLFLASK_WORKERS; every
MLFLASK_* variable is listed in env/example.env).

The same command runs in compose. Each worker gets its share of the cores for torch / ONNX Runtime
(cores / workers, at least 1) unless MLFLASK_THREADS_PER_WORKER or TORCH_NUM_THREADS says otherwise: two workers
that each take every core slow each other down.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from apps.gunicorn_app import GunicornApp
from apps.whole_requests import WORKER, WholeRequests
from mlplatform.cli import load_settings
from mlplatform.errors import PlatformError
from mlplatform.registry.tracking import Tracking
from mlplatform.settings import Settings, cores

log = logging.getLogger("mlflask")


def _create_app(settings: Settings):
    from apps.mlflask import create_app

    return WholeRequests(
        create_app(settings),
        max_body=settings.mlflask_max_body,
        client_timeout=settings.mlflask_client_timeout,
        threads=settings.mlflask_threads,
    )


def threads_per_worker(settings: Settings) -> int:
    """MLFLASK_THREADS_PER_WORKER, else TORCH_NUM_THREADS, else this worker's share of the cores."""
    return (
        settings.mlflask_threads_per_worker or settings.torch_num_threads or max(1, cores() // settings.mlflask_workers)
    )


def main(argv: list[str] | None = None) -> int:
    # Configured by environment variables only; the parser gives --help (it must not start the server).
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args(argv)
    settings = load_settings("mlflask")
    if not settings.mlflask_is_loopback and not settings.mlflask_token and not settings.mlflask_allow_open:
        print(
            f"mlflask: error: MLFLASK_HOST={settings.mlflask_host} is reachable from other machines, so set "
            "MLFLASK_TOKEN (deploy and remove need it), or MLFLASK_ALLOW_OPEN=1 to serve without one",
            file=sys.stderr,
        )
        return 1
    try:
        Tracking(settings).prepare_store()  # here, once: not in every worker at the same time
    except PlatformError as exc:
        print(f"mlflask: error: {exc}", file=sys.stderr)
        return 1
    threads = threads_per_worker(settings)
    metrics_dir = Path(tempfile.mkdtemp(prefix="mlflask-metrics-"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.info("%d workers x %d compute threads on %d cores", settings.mlflask_workers, threads, cores())

    def child_exit(server, worker):
        from apps.mlflask.metrics import mark_worker_dead

        mark_worker_dead(worker.pid, metrics_dir)

    options = {
        "bind": f"{settings.mlflask_host}:{settings.mlflask_port}",
        "workers": settings.mlflask_workers,
        "worker_class": WORKER,  # slow and half-sent requests wait in its event loop, not in a thread
        "timeout": 300,
        "graceful_timeout": 30,
        "accesslog": "-" if settings.mlflask_access_log else None,  # its cost: see README "Serving speed"
        "child_exit": child_exit,
        "raw_env": [
            f"PROMETHEUS_MULTIPROC_DIR={metrics_dir}",
            f"TORCH_NUM_THREADS={threads}",
            f"OMP_NUM_THREADS={threads}",
        ],
    }
    try:
        worker_settings = settings.replace(prometheus_multiproc_dir=metrics_dir, torch_num_threads=threads)
        GunicornApp(lambda: _create_app(worker_settings), options).run()
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
