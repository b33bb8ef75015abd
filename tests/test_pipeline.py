"""The pipeline runner (the Dagster job in process): step selection, env files, failures, retries, live output,
and the local MLFlask it starts."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from dotenv import dotenv_values

from mlplatform.errors import ConfigError
from mlplatform.orchestration.runner import ORDER, select
from mlplatform.settings import Settings
from tests.helpers.services import PLATFORM_VARS, env_without, free_port

pytestmark = pytest.mark.live  # the runner runs the jobs and a local MLFlask as subprocesses

REPO = Path(__file__).resolve().parents[1]


def _runner(args, env, timeout=600):
    return subprocess.run(
        [sys.executable, str(REPO / "jobs" / "run_pipeline.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_step_selection_by_asset_or_job_name():
    assert select() == ORDER
    assert select(start="finetune") == [
        "finetuned_model",
        "challenger_evaluation",
        "champion_deployment",
        "served_predictions",
    ]
    assert select(start="model_deployment") == ["challenger_evaluation", "champion_deployment", "served_predictions"]
    assert select(start="champion_deployment") == ["champion_deployment", "served_predictions"]
    assert select(only="clean_data") == ["clean_reviews"]
    with pytest.raises(ConfigError, match="not a step; choose one of: raw_reviews \\(data_preparation\\)"):
        select(start="train")


def test_env_file_is_read_as_data_and_wins_over_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "x.env"
    path.write_text("# comment\nLAKE_PREFIX=one\nexport MLFLOW_EXP_NAME='two words'\nMODEL_NAME=$(rm -rf /)\n")
    monkeypatch.setenv("LAKE_PREFIX", "from-the-environment")
    monkeypatch.setenv("MLDASH_PORT", "8060")
    with pytest.raises(ConfigError, match=r"MODEL_NAME='\$\(rm -rf /\)' is not valid"):  # read, never run
        Settings.load([path])
    path.write_text("# comment\nLAKE_PREFIX=one\nexport MLFLOW_EXP_NAME='two words'\n")
    settings = Settings.load([path])
    assert (settings.lake_prefix, settings.mlflow_exp_name, settings.mldash_port) == ("one", "two words", 8060)
    with pytest.raises(ConfigError, match="env file .*missing.env does not exist"):
        Settings.load([tmp_path / "missing.env"])


def test_local_env_file_holds_the_embedded_defaults():
    values = dotenv_values(REPO / "env" / "local.env")
    assert values["MLFLOW_BACKEND_STORE_URI"] == "sqlite:///sqlite_directory/mlflow.db"
    assert values["LAKE_DIR"] == "lake" and "AWS_BUCKET" not in values


def test_stops_at_the_first_failure_with_its_error_and_exit_code(tmp_path):
    env = {**env_without(*PLATFORM_VARS), "LAKE_DIR": str(tmp_path / "lake"), "DATA_CACHE_DIR": str(tmp_path)}
    out = _runner(["--from", "clean_data"], env)
    assert out.returncode == 1
    assert "== clean_reviews: FAILED in" in out.stdout and ": no dataset at" in out.stdout
    assert "pipeline: stopped at clean_reviews: no dataset at" in out.stderr
    assert "== [2/4] finetuned_model" not in out.stdout  # nothing downstream ran
    assert re.search(r"finetuned_model +not run", out.stdout)  # and the summary says so


def test_failed_steps_are_retried_with_backoff(tmp_path):
    env = {**env_without(*PLATFORM_VARS), "LAKE_DIR": str(tmp_path / "lake"), "PIPELINE_RETRIES": "1"}
    out = _runner(["--only", "clean_data"], env, timeout=300)
    assert out.returncode == 1, out.stdout
    assert "clean_reviews failed: no dataset at" in out.stdout and "; retry 1 in 2s" in out.stdout
    assert "== clean_reviews: FAILED" in out.stdout and "2 attempts" in out.stdout


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
    assert "MLFlask now serves models:/runner-movie@champion" in out.stdout
    assert "check champion_deployment.behaviour: PASS (5 of 5 behavioural checks passed on runner-movie)" in out.stdout
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/health", timeout=2)  # stopped with the runner


def test_help():
    out = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "run_pipeline.py"), "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0 and "--from STEP" in out.stdout and "PIPELINE_RETRIES" in out.stdout
    assert "finetuned_model" in out.stdout and "dagster dev -m mlplatform.orchestration" in out.stdout


def _tiny_env(tiny_bert, sentiment_bert=None, **extra) -> dict:
    return {
        **env_without(*PLATFORM_VARS),
        "DATA_SOURCE": "sample:400",
        "PRETRAINED_MODEL": str(sentiment_bert or tiny_bert),
        "EPOCHS": "1",
        "MAX_LENGTH": "64",
        "TRAIN_SAMPLES": "0",
        "TEST_SAMPLES": "0",
        "ONNX_EXPORT": "fp32",
        **extra,
    }


def test_the_runner_streams_a_step_while_it_runs(tiny_bert, tmp_path):
    """Progress reaches the reader before the step ends, as plain lines when the output is not a terminal."""
    import threading

    env = _tiny_env(tiny_bert, TQDM_MININTERVAL="0.2", BATCH_SIZE="4", DATA_SOURCE="sample:200")
    assert _runner(["--only", "data_preparation"], env).returncode == 0
    assert _runner(["--only", "clean_data"], env).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-m", "jobs.run_pipeline", "--only", "finetune"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    seen_while_running: list[str] = []

    def read():
        for line in process.stderr:
            if process.poll() is None and "%|" in line:
                seen_while_running.append(line)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        out, _ = process.communicate(timeout=600)
    finally:
        reader.join(30)
    assert process.returncode == 0, out
    assert seen_while_running, "no progress line arrived while the step was running"
    assert any("\r" not in line and line.endswith("\n") for line in seen_while_running), "plain lines, no \\r"
    assert "== finetuned_model: ok" in out and "step" in out  # the summary table stays
    assert "{'loss'" not in "".join(seen_while_running), "the Trainer's raw log dicts are silenced"


def test_a_non_editable_install_runs_the_pipeline_from_anywhere(tiny_bert, sentiment_bert, tmp_path):
    """`pip install .` (not editable), then the console entry point from an unrelated folder, with the default
    relative sqlite URI: all five jobs, and the MLFlask the runner starts uses the caller's folder too."""
    import site
    import venv

    target = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(target)
    (
        target / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages" / "deps.pth"
    ).write_text(
        "\n".join(p for p in site.getsitepackages() if "site-packages" in p) + "\n"  # the dependencies, not our code
    )
    wheels = tmp_path / "wheels"
    built = subprocess.run(  # a wheel, installed into the new venv only: the dev install stays untouched
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(REPO)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    uv = Path(sys.executable).parent / "uv"
    installed = subprocess.run(
        [str(uv), "pip", "install", "-q", "--no-deps", "--offline", "--python", str(target / "bin" / "python")]
        + [str(wheel) for wheel in wheels.glob("*.whl")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    env = _tiny_env(tiny_bert, sentiment_bert, MLFLASK_URL=f"http://127.0.0.1:{port}", DEPLOY_METRIC="val_accuracy")
    env["LEARNING_RATE"] = "1e-4"
    out = subprocess.run(
        [str(target / "bin" / "mlplatform-pipeline")],
        env=env,
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    for step in ORDER:
        assert f"== {step}: ok" in out.stdout
    assert (elsewhere / "sqlite_directory" / "mlflow.db").is_file(), "the default relative URI, from the caller"
    assert (elsewhere / "lake").is_dir() and (elsewhere / "mlflask_store").is_dir()
    code = subprocess.run(
        [str(target / "bin" / "python"), "-c", "import mlplatform; print(mlplatform.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=elsewhere,
    ).stdout
    assert str(target) in code, f"the installed copy ran, not the clone: {code}"
