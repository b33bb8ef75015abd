"""`make demo`: the five jobs on the embedded defaults (env/local.env), then every UI, until Ctrl-C.

Variables already set win over env/local.env. The services are this interpreter's (the Makefile's venv); Ctrl-C
stops everything this script started. Logs go to ./<service>.log.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import requests

from mlplatform.envfile import read_env_file
from mlplatform.errors import PlatformError
from mlplatform.orchestration.runner import prepare_home
from mlplatform.settings import Settings, environ

REPO = Path(__file__).resolve().parents[1]
# The quick profile: minutes on 2 CPU cores.
QUICK = {"TRAIN_SAMPLES": "2000", "TEST_SAMPLES": "500", "MAX_LENGTH": "64", "EPOCHS": "1"}
MLFLOW_UI_PORT = 5000


def _start(name: str, command: list[str], env: dict[str, str], started: list) -> None:
    log = open(f"{name}.log", "ab")
    started.append(subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))


def _wait_for(url: str, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(url, timeout=2).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise PlatformError(f"{name} did not start within {timeout:.0f}s; see {name}.log")


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # `kill` (or a supervisor's stop) tears everything down, like Ctrl-C


def main() -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    env = {**QUICK, **read_env_file(REPO / "env" / "local.env"), **environ()}
    env.setdefault("MLFLOW_UI_URL", f"http://127.0.0.1:{MLFLOW_UI_PORT}")
    # One Dagster instance for the CLI run below and the UI: the run shows in the UI's history.
    env["DAGSTER_HOME"] = str(prepare_home(Path(env.get("DAGSTER_HOME") or "dagster_home")))
    settings = Settings.from_env(env)
    python = sys.executable
    started: list[subprocess.Popen] = []
    try:
        _start("mlflask", [python, "-m", "apps.mlflask"], env, started)
        _wait_for(f"{settings.mlflask_url}/health", "mlflask")
        code = subprocess.call([python, str(REPO / "jobs" / "run_pipeline.py")], env=env)
        if code != 0:
            return code
        ui = [python, "-m", "mlflow", "ui", "--host", "127.0.0.1", "--port", str(MLFLOW_UI_PORT)]
        _start("mlflow-ui", [*ui, "--backend-store-uri", settings.mlflow_backend_store_uri], env, started)
        _start("mldash", [python, "-m", "apps.mldash"], env, started)
        dagster = [python, "-m", "dagster", "dev", "-m", "mlplatform.orchestration", "-h", "127.0.0.1"]
        _start("dagster", [*dagster, "-p", str(settings.dagster_port)], env, started)
        mldash = f"http://127.0.0.1:{settings.mldash_port}"
        dagster_ui = f"http://127.0.0.1:{settings.dagster_port}"
        _wait_for(f"{settings.mlflow_ui_url}/health", "mlflow-ui")
        _wait_for(mldash, "mldash")
        _wait_for(f"{dagster_ui}/server_info", "dagster")
        print(
            "\ndemo: everything is up (Ctrl-C stops it all)\n"
            f"  MLflow UI  {settings.mlflow_ui_url}\n"
            f"  MLFlask    {settings.mlflask_url}   (try: curl -s {settings.mlflask_url}/models)\n"
            f"  API docs   {settings.mlflask_url}/docs\n"
            f"  MLDash     {mldash}\n"
            f"  Dagster    {dagster_ui}   (assets, runs, launchpad, schedule and sensor)",
            flush=True,
        )
        while all(p.poll() is None for p in started):
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
        for process in started:  # each service is its own process group: its workers and children stop with it
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: what `dagster dev` and gunicorn stop on quickly
        for process in started:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
