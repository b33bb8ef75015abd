"""MLFlask across restarts (live: signals and a second start), and in process: with a token, with MLflow down,
and quantized."""

import os
import signal

import pytest
import requests

from tests.helpers.inprocess import mlflask_app
from tests.helpers.services import free_port, start_mlflask, stop_process


def _deploy(url, run_id, name="movie", **kwargs):
    return requests.post(url + "/models", json={"name": name, "run_id": run_id}, timeout=120, **kwargs)


@pytest.mark.parametrize("how", ["SIGTERM", "kill -9"])
def test_deployed_set_survives_restart(serving_runs, tmp_path, how):
    url, process, _, store = start_mlflask(tmp_path, serving_runs["env"])
    try:
        assert _deploy(url, serving_runs["good"].run_id).status_code == 200
        assert _deploy(url, serving_runs["other"].run_id, name="second").status_code == 200
        before = requests.get(url + "/models", timeout=5).json()
        predicted = requests.post(url + "/predict", json={"model": "movie", "texts": ["brilliant"]}, timeout=30).json()
        if how == "kill -9":
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        else:
            stop_process(process)
    finally:
        stop_process(process)
    url, process, _, _ = start_mlflask(tmp_path, serving_runs["env"], store=store)
    try:
        assert requests.get(url + "/models", timeout=5).json() == before
        after = requests.post(url + "/predict", json={"model": "movie", "texts": ["brilliant"]}, timeout=30).json()
        assert after.get("predictions", [{}])[0].get("label") == predicted["predictions"][0]["label"], after
        assert after["run_id"] == serving_runs["good"].run_id
        assert [e["action"] for e in requests.get(url + "/logs", timeout=5).json()["logs"]][:2] == ["deploy", "deploy"]
    finally:
        stop_process(process)


def test_token_guards_deploy_and_remove_but_not_predict(serving_runs, tmp_path):
    good = serving_runs["good"].run_id
    with mlflask_app(tmp_path, {**serving_runs["env"], "MLFLASK_TOKEN": "s3cret-token"}) as (client, _, _):
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret-token"}):
            response = client.post("/models", json={"name": "movie", "run_id": good}, headers=headers)
            assert response.status_code == 401 and "token" in response.get_json()["error"]
        assert client.get("/models").get_json() == {"models": []}
        auth = {"Authorization": "Bearer s3cret-token"}
        assert client.post("/models", json={"name": "movie", "run_id": good}, headers=auth).status_code == 200
        assert client.post("/predict", json={"model": "movie", "texts": ["ok"]}).status_code == 200
        assert client.delete("/models/movie").status_code == 401
        assert client.delete("/models/movie", headers=auth).status_code == 200
        assert "s3cret-token" not in client.get("/logs").get_data(as_text=True)


def test_mlflow_down_gives_503_and_keeps_the_deployed_set(serving_runs, tmp_path):
    with mlflask_app(tmp_path, serving_runs["env"]) as (client, _, store):
        assert client.post("/models", json={"name": "movie", "run_id": serving_runs["good"].run_id}).status_code == 200
        before = client.get("/models").get_json()
    dead = {**serving_runs["env"], "MLFLOWSERVER_URL": f"http://127.0.0.1:{free_port()}"}
    with mlflask_app(tmp_path, dead, store=store) as (client, _, _):
        for body in ({"name": "movie", "metric": "val_f1"}, {"name": "movie", "run_id": serving_runs["other"].run_id}):
            response = client.post("/models", json=body)
            assert response.status_code == 503 and "MLflow" in response.get_json()["error"]
        after = client.get("/models").get_json()
        served = [(m["name"], m["version"], m["run_id"], m["deployed_at"]) for m in after["models"]]
        assert served == [(m["name"], m["version"], m["run_id"], m["deployed_at"]) for m in before["models"]]
        ok = client.post("/predict", json={"model": "movie", "texts": ["ok"]})
        assert ok.status_code == 200, "deployed models keep serving while MLflow is down"


def test_quantized_serving_agrees_with_fp32(serving_runs, tmp_path):
    from tests.test_mlflask import FOUR

    good = {"name": "movie", "run_id": serving_runs["good"].run_id}
    with (
        mlflask_app(tmp_path / "fp32", serving_runs["env"]) as (fp32, _, _),
        mlflask_app(tmp_path / "int8", {**serving_runs["env"], "MLFLASK_QUANTIZE": "1"}) as (int8, _, _),
    ):
        for client in (fp32, int8):
            assert client.post("/models", json=good).status_code == 200
        a = fp32.post("/predict", json={"model": "movie", "texts": FOUR}).get_json()
        b = int8.post("/predict", json={"model": "movie", "texts": FOUR}).get_json()
        assert int8.get("/models").get_json()["models"][0]["quantized"] is True
        for p, q in zip(a["predictions"], b["predictions"], strict=True):
            assert q["probabilities"]["positive"] == pytest.approx(p["probabilities"]["positive"], abs=0.1)


def test_two_workers_on_a_fresh_sqlite_store_both_start(tmp_path):
    """The store is created once, before the workers: two of them no longer race to create its tables."""
    store_uri = f"sqlite:///{tmp_path}/fresh/mlflow.db"
    url, process, log_path, _ = start_mlflask(tmp_path, {"MLFLOW_BACKEND_STORE_URI": store_uri}, workers=2)
    try:
        answers = {requests.get(f"{url}/health", timeout=5, headers={"Connection": "close"}).ok for _ in range(20)}
        assert answers == {True} and process.poll() is None
        assert (tmp_path / "fresh" / "mlflow.db").is_file()
        log = log_path.read_text()
        assert "already exists" not in log and "Worker failed to boot" not in log, log[-2000:]
        assert requests.get(f"{url}/models", timeout=5).json() == {"models": []}
    finally:
        stop_process(process)
