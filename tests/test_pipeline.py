"""The pipeline runner: step selection, env files, failure handling, and the local MLFlask it starts."""

import subprocess
import sys
from pathlib import Path

import pytest
import requests

from mlplatform.envfile import read_env_file
from mlplatform.errors import ConfigError
from mlplatform.pipeline import STEPS, select_steps
from tests.conftest import PLATFORM_VARS, env_without, free_port

REPO = Path(__file__).resolve().parents[1]


def _runner(args, env, timeout=600):
    return subprocess.run(
        [sys.executable, str(REPO / "jobs" / "run_pipeline.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_step_selection():
    assert select_steps() == STEPS
    assert select_steps(start="finetune") == ["finetune", "model_deployment", "interface_handler"]
    assert select_steps(only="clean_data") == ["clean_data"]
    with pytest.raises(ConfigError, match="not a step"):
        select_steps(start="train")


def test_env_file_is_read_as_data(tmp_path):
    path = tmp_path / "x.env"
    path.write_text("# comment\nA=1\nexport B='two words'\nC=$(rm -rf /)  # not run\n\nD=\"q\"\n")
    assert read_env_file(path) == {"A": "1", "B": "two words", "C": "$(rm -rf /)", "D": "q"}
    path.write_text("not an assignment\n")
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        read_env_file(path)


def test_local_env_file_holds_the_embedded_defaults():
    values = read_env_file(REPO / "env" / "local.env")
    assert values["MLFLOW_BACKEND_STORE_URI"] == "sqlite:///sqlite_directory/mlflow.db"
    assert values["LAKE_DIR"] == "lake" and "AWS_BUCKET" not in values


def test_stops_at_the_first_failure_with_its_error_and_exit_code(tmp_path):
    env = {**env_without(*PLATFORM_VARS), "LAKE_DIR": str(tmp_path / "lake"), "DATA_CACHE_DIR": str(tmp_path)}
    out = _runner(["--from", "clean_data"], env)
    assert out.returncode == 1
    assert "== clean_data: FAILED (exit 1)" in out.stdout
    assert "pipeline: stopped at clean_data: clean_data: error: no dataset at" in out.stderr
    assert "finetune" not in out.stdout.split("== clean_data: FAILED")[1].split("step")[0]


def test_retries_apply_to_safe_steps(tmp_path):
    env = {**env_without(*PLATFORM_VARS), "LAKE_DIR": str(tmp_path / "lake"), "PIPELINE_RETRIES": "1"}
    out = _runner(["--only", "clean_data"], env)
    assert out.returncode == 1 and "retry 1/1" in out.stdout and "2 attempts" in out.stdout


def test_starts_a_local_mlflask_when_none_answers(serving_runs, tmp_path):
    port = free_port()
    env = {
        **env_without(*PLATFORM_VARS),
        **serving_runs["env"],
        "MLFLASK_URL": f"http://127.0.0.1:{port}",
        "MLFLASK_STORE": str(tmp_path / "store"),
        "MLFLASK_LOG": str(tmp_path / "mlflask.log"),
        "MODEL_NAME": "runner-movie",
        "DEPLOY_METRIC": "val_accuracy",
    }
    out = _runner(["--from", "model_deployment"], env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"nothing answers at http://127.0.0.1:{port}; starting a local MLFlask" in out.stdout
    assert "now serves runner-movie = models:/runner-movie@champion" in out.stdout
    assert "all 5 behavioural checks passed" in out.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)  # stopped with the runner


def test_help():
    out = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "run_pipeline.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "--from STEP" in out.stdout and "PIPELINE_RETRIES" in out.stdout
