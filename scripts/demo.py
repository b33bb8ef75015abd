"""`make demo`: the five jobs on the embedded defaults (env/local.env), then every UI, until Ctrl-C.

Variables already set win over env/local.env. The services are this interpreter's (the Makefile's venv); Ctrl-C
stops everything this script started. Logs go to ./<service>.log.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from dotenv import dotenv_values

from mlplatform.errors import PlatformError
from mlplatform.launch import Service
from mlplatform.orchestration.runner import prepare_home
from mlplatform.settings import Settings

REPO = Path(__file__).resolve().parents[1]
# The quick profile: minutes on 2 CPU cores.
QUICK = {"TRAIN_SAMPLES": "2000", "TEST_SAMPLES": "500", "MAX_LENGTH": "64", "EPOCHS": "1"}
MLFLOW_UI_PORT = 5000
_PR_SET_PDEATHSIG = 1  # from linux/prctl.h


def _interrupt(signum, frame):
    # `kill` (or a supervisor's stop) tears everything down, like Ctrl-C. A second signal must not cut the
    # teardown short: make passes SIGTERM on, and then its death sends another (PR_SET_PDEATHSIG).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _stop_with_parent() -> None:
    """`kill <pid of make>` ends make but not its child: ask Linux to send this process SIGTERM when its parent
    dies (the Makefile execs into it, so the parent is make), and so tear the services down."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _run_pipeline(command: list[str], env: dict) -> int:
    """The pipeline, stopped with SIGINT (not killed) when the demo is interrupted: it may have started an MLFlask
    of its own, which only its own teardown stops."""
    pipeline = subprocess.Popen(command, env=env)
    try:
        return pipeline.wait()
    except KeyboardInterrupt:
        pipeline.send_signal(signal.SIGINT)
        try:
            pipeline.wait(60)
        except subprocess.TimeoutExpired:
            pipeline.kill()
        raise


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    _stop_with_parent()
    env = {**QUICK, **dotenv_values(REPO / "env" / "local.env"), **os.environ}
    env.setdefault("MLFLOW_UI_URL", f"http://127.0.0.1:{MLFLOW_UI_PORT}")
    # One Dagster instance for the CLI run below and the UI: the run shows in the UI's history.
    env["DAGSTER_HOME"] = str(prepare_home(Path(env.get("DAGSTER_HOME") or "dagster_home")))
    settings = Settings.from_mapping(env)
    python = sys.executable
    started: list[Service] = []

    def start(name: str, command: list[str], health: str) -> None:
        started.append(Service(name, command, health, env=env, log=f"{name}.log").start())

    try:
        start("mlflask", [python, "-m", "apps.mlflask"], f"{settings.mlflask_url}/health")
        code = _run_pipeline([python, str(REPO / "jobs" / "run_pipeline.py"), "--no-local-mlflask"], env)
        if code != 0:
            return code
        ui = [python, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(MLFLOW_UI_PORT)]
        mldash = f"http://127.0.0.1:{settings.mldash_port}"
        dagster_ui = f"http://127.0.0.1:{settings.dagster_port}"
        ui_store = ["--backend-store-uri", settings.mlflow_backend_store_uri]
        start("mlflow-ui", [*ui, *ui_store], f"{settings.mlflow_ui_url}/health")
        start("mldash", [python, "-m", "apps.mldash"], mldash)
        dagster = [python, "-m", "dagster", "dev", "-m", "mlplatform.orchestration", "-h", "127.0.0.1"]
        start("dagster", [*dagster, "-p", str(settings.dagster_port)], f"{dagster_ui}/server_info")
        print(
            "\ndemo: everything is up (Ctrl-C stops it all)\n"
            f"  MLflow UI  {settings.mlflow_ui_url}\n"
            f"  MLFlask    {settings.mlflask_url}   (try: curl -s {settings.mlflask_url}/models)\n"
            f"  API docs   {settings.mlflask_url}/docs\n"
            f"  MLDash     {mldash}\n"
            f"  Dagster    {dagster_ui}   (assets, runs, launchpad, schedule and sensor)",
            flush=True,
        )
        while all(service.running for service in started):
            time.sleep(1)
        print("demo: a service stopped; see its log", file=sys.stderr)
        return 1
    except PlatformError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        print(f"demo: stopping {len(started)} services")
        for service in started:
            service.stop()


if __name__ == "__main__":
    sys.exit(main())
