"""What MLFlask does with bad input, bad models and a bad store, against a live `python -m apps.mlflask` with two
workers: a 4xx never a 500, one bad text fails only its own request, a broken or unloadable model leaves the
deployed set as it was, a corrupt state file is a 503 while /health answers."""

import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.helpers.inprocess import mlflask_app
from tests.helpers.mlflask import post_raw

NAME = "failures"


@pytest.mark.parametrize(
    "method, path, body, status, fragment",
    [
        ("POST", "/predict", {"model": NAME, "data": [[list(range(1, 600))], [[1] * 599]]}, 413, "at most"),
        ("POST", "/predict", "[" * 50_000 + "]" * 50_000, 400, "nested too deeply"),
        ("POST", "/predict", {"model": NAME, "texts": ["a"], "data": [[[1]], [[1]]]}, 400, "not both"),
        ("GET", "/logs?limit=%C2%B2", None, 400, "'limit'"),
        ("GET", "/logs?limit=1%0A", None, 400, "'limit'"),
        ("POST", "/models", {"name": "bad\n", "run_id": "0" * 32}, 422, "model name"),
        ("POST", "/models", {"name": "x", "model_uri": "models:/x\n/1"}, 400, "model_uri"),
        ("POST", "/models", {"name": "x", "model_uri": "file:///etc/passwd"}, 400, "model_uri"),
        ("POST", "/models", {"name": "x", "model_uri": "models:/nope/1", "run_id": "a"}, 400, "not both"),
        ("POST", "/models", {"name": "x", "model_uri": "models:/nope@champion"}, 404, "does not exist"),
        ("GET", "/models/bad%0A", None, 422, "model name"),
        (
            "POST",
            f"/v2/models/{NAME}/infer",
            {"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "data": [1, 2]}]},
            400,
            "BYTES",
        ),
        (
            "POST",
            f"/v2/models/{NAME}/infer",
            {"inputs": [{"name": "t", "shape": [3], "datatype": "BYTES", "data": ["a"]}]},
            400,
            "shape",
        ),
        (
            "POST",
            "/v2/models/ghost/infer",
            {"inputs": [{"name": "t", "shape": [1], "datatype": "BYTES", "data": ["a"]}]},
            404,
            "not deployed",
        ),
    ],
)
def test_inputs_that_once_gave_500s(live, method, path, body, status, fragment):
    kwargs = (
        {"data": body, "headers": {"Content-Type": "application/json"}} if isinstance(body, str) else {"json": body}
    )
    response = requests.request(method, live["url"] + path, timeout=30, **kwargs)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"] and "Traceback" not in response.text
    assert "127.0.0.1" not in response.text, "no internal address in a public error"


def test_a_lone_surrogate_fails_only_its_own_request(live):
    url = live["url"] + "/predict"
    clean = json.dumps({"model": NAME, "texts": ["A fine, moving film."]})
    poisoned = json.dumps({"model": NAME, "texts": ["bad \ud800 text"]})  # valid JSON ("\\ud800"), not Unicode
    bodies = [poisoned if i % 4 == 0 else clean for i in range(64)]
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda raw: post_raw(url, raw), bodies))
    statuses = [(raw is poisoned, answer.status_code) for raw, answer in zip(bodies, answers, strict=True)]
    assert all(code == 200 for bad, code in statuses if not bad), statuses
    assert all(code == 400 for bad, code in statuses if bad), statuses
    assert "surrogate" in answers[0].json()["error"]
    for path, raw in (
        ("/invocations?model=" + NAME, '{"inputs": ["\\udfff"]}'),
        (
            f"/v2/models/{NAME}/infer",
            '{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["\\ud800"]}]}',
        ),
    ):
        answer = post_raw(live["url"] + path, raw)
        assert answer.status_code == 400, (path, answer.text)


def test_the_servable_is_served_as_job_3_checked_it(live):
    import json

    import mlflow

    served = requests.get(live["url"] + "/models/" + NAME, timeout=5).json()
    mlflow.set_tracking_uri(live["runs"]["env"]["MLFLOWSERVER_URL"])
    config = json.loads(mlflow.artifacts.load_text(f"runs:/{served['run_id']}/model/artifacts/servable/servable.json"))
    approved = config["check"]["int8"]["passed"]  # MLFLASK_QUANTIZE=auto: int8 only where job 3 passed it
    assert config["int8"] is approved and config["check"]["fp32"]["passed"]
    assert served["backend"] == ("onnx-int8" if approved else "onnx") and served["quantized"] is approved
    deploys = [
        e for e in requests.get(live["url"] + "/logs?limit=200", timeout=5).json()["logs"] if e["action"] == "deploy"
    ]
    assert any(e.get("backend") == served["backend"] for e in deploys)


def test_a_broken_servable_is_refused_and_the_deployed_set_stays(live, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    env = live["runs"]["env"]
    mlflow.set_tracking_uri(env["MLFLOWSERVER_URL"])
    local = mlflow.artifacts.download_artifacts(f"models:/{NAME}/1", dst_path=str(tmp_path / "model"))
    for graph in (tmp_path / "model").rglob("*.onnx"):
        graph.write_bytes(b"this is no ONNX graph")
    experiment = MlflowClient(env["MLFLOWSERVER_URL"]).get_experiment_by_name(env["MLFLOW_EXP_NAME"]).experiment_id
    with mlflow.start_run(experiment_id=experiment, run_name="bad-export") as run:
        mlflow.log_artifacts(local, "model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "bad-export").version
    before = requests.get(live["url"] + "/models", timeout=5).json()
    body = {"name": "bad-export", "model_uri": f"models:/bad-export/{version}"}
    response = requests.post(live["url"] + "/models", json=body, timeout=300)
    assert response.status_code == 422 and "not a loadable text classifier" in response.json()["error"]
    assert requests.get(live["url"] + "/models", timeout=5).json() == before


def test_a_model_that_fails_to_load_is_a_503_and_is_not_reloaded_on_every_request(serving_runs, tmp_path, caplog):
    run_id = serving_runs["good"].run_id
    env = {**serving_runs["env"], "MLFLASK_MAX_MODELS": "1", "MLFLASK_FOLLOW_INTERVAL": "0"}
    with mlflask_app(tmp_path, env) as (client, _, store):
        for name in ("first", "second"):  # one model kept: deploying `second` unloads `first`
            answer = client.post("/models", json={"name": name, "run_id": run_id})
            assert answer.status_code == 200, answer.get_json()
        state = json.loads((store / "state.json").read_text())["models"]
        folder = store / "models" / state["first"]["deploy_id"]
        for graph in folder.rglob("*.onnx"):
            graph.unlink()
        caplog.clear()
        answers = [client.post("/predict", json={"model": "first", "texts": ["ok"]}) for _ in range(5)]
        assert {a.status_code for a in answers} == {503}, [a.get_json() for a in answers]
        assert all(a.headers.get("Retry-After") and "could not be loaded" in a.get_json()["error"] for a in answers)
        assert caplog.text.count("could not load first") == 1, "tried once, then answered from memory"
        assert client.post("/predict", json={"model": "second", "texts": ["ok"]}).status_code == 200


def test_a_corrupt_state_file_gives_503s_while_health_answers(serving_runs, tmp_path):
    with mlflask_app(tmp_path, {**serving_runs["env"], "MLFLASK_FOLLOW_INTERVAL": "0"}) as (client, _, store):
        (store / "state.json").write_text('{"models": ')
        assert client.get("/health").status_code == 200
        for method, path in (("get", "/models"), ("get", "/ready"), ("post", "/predict")):
            answer = getattr(client, method)(path, json={"model": "x", "texts": ["a"]})
            assert answer.status_code == 503 and answer.headers.get("Retry-After"), (path, answer.get_json())
            assert "state" in answer.get_json()["error"]


def test_junk_requests_cannot_rotate_the_deploy_history_away(serving_runs, tmp_path):
    env = {**serving_runs["env"], "MLFLASK_FOLLOW_INTERVAL": "0", "MLFLASK_LOG_MAX_BYTES": "8192"}
    with mlflask_app(tmp_path, env) as (client, _, _):
        answer = client.post("/models", json={"name": "kept", "run_id": serving_runs["good"].run_id})
        assert answer.status_code == 200
        for _ in range(300):  # far beyond what 8 KiB of log holds
            client.post("/predict", json={"model": "ghost", "texts": ["a"]})
        actions = client.get("/logs?failed_requests=0").get_json()["logs"]
        assert [entry["action"] for entry in actions] == ["deploy"]
        everything = client.get("/logs").get_json()["logs"]
        assert everything[0]["action"] == "failed_request"


def test_state_writes_of_the_same_size_in_one_clock_tick_are_both_seen(tmp_path):
    from apps.mlflask.store import ModelStore

    store = ModelStore(tmp_path / "store")
    store._write_state({"a": {"deploy_id": "1"}})
    assert store.read_state() == {"a": {"deploy_id": "1"}}
    mtime = (tmp_path / "store" / "state.json").stat().st_mtime_ns
    store._write_state({"a": {"deploy_id": "2"}})  # same size
    os.utime(tmp_path / "store" / "state.json", ns=(mtime, mtime))  # and the same clock tick
    assert store.read_state() == {"a": {"deploy_id": "2"}}
