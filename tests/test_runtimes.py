"""One servable, every runtime: the same registered version answers 200 real sentences with the same labels, and
probabilities within 1e-4, in MLFlask, in `mlflow.pyfunc.load_model` and in `mlflow models serve`."""

import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import requests
from mlflow.tracking import MlflowClient

from apps.mlflask import create_app
from mlplatform.launch import free_port
from mlplatform.settings import Settings
from tests.helpers.services import PLATFORM_VARS, env_without, stop_process, wait_for_http

NAME = "runtime-parity"
SENTENCES = Path(__file__).resolve().parents[2] / "shared" / "data" / "rt-polarity-dev.csv"
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def champion(serving_runs):
    """The good run registered as models:/runtime-parity@champion in the tracking server."""
    mlflow.set_tracking_uri(serving_runs["env"]["MLFLOWSERVER_URL"])
    version = mlflow.register_model(f"runs:/{serving_runs['good'].run_id}/model", NAME).version
    MlflowClient().set_registered_model_alias(NAME, "champion", version)
    return {"uri": f"models:/{NAME}@champion", "version": str(version), "env": serving_runs["env"]}


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    if not SENTENCES.is_file():
        pytest.skip(f"{SENTENCES} is not here (it sits beside the checkout in CI)")
    return pd.read_csv(SENTENCES)["text"].head(200).tolist()


@pytest.fixture(scope="module")
def mlflask_answers(champion, sentences, tmp_path_factory):
    """MLFlask's answers, in process: POST /models, then POST /predict in requests of 50."""
    settings = Settings.from_mapping(
        {**champion["env"], "MLFLASK_STORE": str(tmp_path_factory.mktemp("store")), "MLFLASK_PREDICTION_LOG": "0"}
    )
    client = create_app(settings).test_client()
    deployed = client.post("/models", json={"name": "parity", "model_uri": champion["uri"]})
    assert deployed.status_code == 200, deployed.get_json()
    assert deployed.get_json()["version"] == champion["version"]
    rows = []
    for start in range(0, len(sentences), 50):
        answer = client.post("/predict", json={"model": "parity", "texts": sentences[start : start + 50]})
        assert answer.status_code == 200, answer.get_json()
        rows += answer.get_json()["predictions"]
    return pd.DataFrame(
        {
            "label": [row["label"] for row in rows],
            "probability_negative": [row["probabilities"]["negative"] for row in rows],
            "probability_positive": [row["probabilities"]["positive"] for row in rows],
        }
    )


def _same(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    assert len(got) == len(expected) == 200
    assert got["label"].tolist() == expected["label"].tolist()
    for column in ("probability_negative", "probability_positive"):
        assert (got[column] - expected[column]).abs().max() <= TOLERANCE, column


def test_mlflow_pyfunc_load_model_gives_mlflasks_answers(champion, sentences, mlflask_answers):
    model = mlflow.pyfunc.load_model(champion["uri"])
    _same(mlflask_answers, model.predict(pd.DataFrame({"text": sentences})))


def test_mlflow_models_serve_gives_mlflasks_answers(champion, sentences, mlflask_answers, tmp_path):
    port = free_port()
    env = {
        **env_without(*PLATFORM_VARS),
        "MLFLOW_TRACKING_URI": champion["env"]["MLFLOWSERVER_URL"],
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",  # its uvicorn, as activated
    }
    log = open(tmp_path / "serve.log", "wb")
    command = ["-m", "mlflow", "models", "serve", "-m", champion["uri"], "--env-manager", "local"]
    process = subprocess.Popen(
        [sys.executable, *command, "--host", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", process, timeout=120)
        body = {"dataframe_split": {"columns": ["text"], "data": [[text] for text in sentences]}}
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", json=body, timeout=120)
        assert answer.status_code == 200, answer.text[:500]
        _same(mlflask_answers, pd.DataFrame(answer.json()["predictions"]))
    finally:
        stop_process(process)
        log.close()
