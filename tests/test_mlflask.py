"""MLFlask over real HTTP: gunicorn with 2 workers, models from the real tracking server."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from mlplatform.registry.runs import maximise
from mlplatform.serving.behaviour import OBVIOUS_NEGATIVE, OBVIOUS_POSITIVE

FOUR = [OBVIOUS_POSITIVE[0], OBVIOUS_NEGATIVE[0], "The plot was brilliant.", "A waste of time."]


def post(url, path, body=None, **kwargs):
    return requests.post(url + path, json=body, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def deployed(mlflask):
    """`movie` deployed from the best run by val_f1, for the read-only tests."""
    response = post(mlflask["url"], "/models", {"name": "movie", "run_id": mlflask["runs"]["good"].run_id})
    assert response.status_code == 200, response.text
    return mlflask


def test_health_ready_and_openapi(mlflask):
    assert requests.get(mlflask["url"] + "/health", timeout=5).json() == {"status": "ok"}
    assert requests.get(mlflask["url"] + "/ready", timeout=5).json()["status"] == "ready"
    spec = requests.get(mlflask["url"] + "/openapi.json", timeout=5).json()
    assert spec["openapi"].startswith("3.") and {"/predict", "/models", "/invocations"} <= set(spec["paths"])


def test_deploy_by_metric_picks_the_best_finished_run(mlflask):
    runs = mlflask["runs"]
    for metric in ("val_f1", "val_loss"):
        response = post(mlflask["url"], "/models", {"name": f"best-{metric}", "metric": metric})
        assert response.status_code == 200, response.text
        body = response.json()
        values = {r.run_id: r.metrics[metric] for r in (runs["good"], runs["other"])}
        best = max(values.values()) if maximise(metric) else min(values.values())
        assert body["metrics"][metric] == pytest.approx(best)
        assert values[body["run_id"]] == pytest.approx(best)
        name = f"best-{metric}"
        assert body["model_uri"] == f"models:/{name}@champion" and body["registered_model"] == name
        assert body["version"] == "1" and body["alias"] == "champion" and body["deployed_at"]


def test_models_lists_deployed_with_metadata(deployed):
    models = requests.get(deployed["url"] + "/models", timeout=5).json()["models"]
    movie = next(m for m in models if m["name"] == "movie")
    assert movie["run_id"] == deployed["runs"]["good"].run_id
    assert movie["params"]["learning_rate"] == "0.0001"
    assert [m["deployed_at"] for m in models] == sorted((m["deployed_at"] for m in models), reverse=True)


def test_predict_four_sentences(deployed):
    response = post(deployed["url"], "/predict", {"model": "movie", "texts": FOUR})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "movie" and body["run_id"] == deployed["runs"]["good"].run_id
    assert len(body["predictions"]) == 4
    for p in body["predictions"]:
        assert p["label"] in {"negative", "positive"}
        assert set(p["probabilities"]) == {"negative", "positive"}
        assert sum(p["probabilities"].values()) == pytest.approx(1, abs=1e-4)
        assert p["score"] == pytest.approx(p["probabilities"][p["label"]])
    labels = [p["label"] for p in body["predictions"]]
    assert labels[:2] == ["positive", "negative"], "the obvious reviews come out right"


def test_overlong_text_is_truncated_not_rejected(deployed):
    response = post(deployed["url"], "/predict", {"model": "movie", "texts": ["brilliant " * 5000]})
    assert response.status_code == 200 and response.json()["predictions"][0]["label"] in {"negative", "positive"}


def test_legacy_body_answers_in_legacy_shape(deployed):
    from tokenizers import Tokenizer

    store = deployed["store"]
    state = json.loads((store / "state.json").read_text())["models"]["movie"]
    folder = store / "models" / state["deploy_id"] / "artifacts" / "servable"
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0)
    encoded = tokenizer.encode_batch(FOUR)
    body = {"model": "movie", "data": [[e.ids for e in encoded], [e.attention_mask for e in encoded]]}
    response = post(deployed["url"], "/predict", body)
    assert response.status_code == 200, response.text
    legacy = response.json()["response"]
    assert legacy.startswith("[") and legacy.endswith("]")
    expected = [
        int(p["label"] == "positive")
        for p in post(deployed["url"], "/predict", {"model": "movie", "texts": FOUR}).json()["predictions"]
    ]
    assert [int(x) for x in legacy.strip("[]").split()] == expected


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": FOUR},
        {"inputs": {"text": FOUR}},
        {"dataframe_records": [{"text": t} for t in FOUR]},
        {"dataframe_split": {"columns": ["text"], "data": [[t] for t in FOUR]}},
    ],
)
def test_invocations_formats(deployed, body):
    direct = post(deployed["url"], "/predict", {"model": "movie", "texts": FOUR}).json()["predictions"]
    response = post(deployed["url"], "/invocations?model=movie", body)
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p["label"] for p in predictions] == [p["label"] for p in direct]
    assert [p["score"] for p in predictions] == pytest.approx([p["score"] for p in direct], abs=1e-5)


def test_invocations_without_model_uses_the_latest_deploy(deployed):
    assert post(deployed["url"], "/models", {"name": "latest-one", "run_id": deployed["runs"]["other"].run_id}).ok
    response = post(deployed["url"], "/invocations", {"inputs": ["fine"]})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1
    assert requests.delete(deployed["url"] + "/models/latest-one", timeout=10).status_code == 200


def test_logs_newest_first_and_metrics(deployed):
    post(deployed["url"], "/predict", {"model": "nope", "texts": ["x"]})
    logs = requests.get(deployed["url"] + "/logs", timeout=5).json()["logs"]
    assert logs[0]["action"] == "failed_request" and logs[0]["status"] == 404
    assert any(entry["action"] == "deploy" and entry["model"] == "movie" for entry in logs)
    assert [e["time"] for e in logs] == sorted((e["time"] for e in logs), reverse=True)
    text = requests.get(deployed["url"] + "/metrics", timeout=5).text
    assert "# TYPE mlflask_requests_total counter" in text
    assert "mlflask_predict_latency_seconds_bucket" in text or "mlflask_errors_total" in text


def test_both_workers_serve_the_same_deployed_set(deployed):
    """A deploy made through one worker is visible to the other: both load it, and every answer names one run."""
    from prometheus_client.parser import text_string_to_metric_families

    run_ids = set()
    for _ in range(40):  # a new connection each time, so both workers answer some
        answer = requests.post(
            deployed["url"] + "/predict",
            json={"model": "movie", "texts": ["ok"]},
            headers={"Connection": "close"},
            timeout=30,
        )
        run_ids.add(answer.json()["run_id"])
    page = requests.get(deployed["url"] + "/metrics", timeout=5).text
    loaded = sum(
        s.value for f in text_string_to_metric_families(page) for s in f.samples if s.name == "mlflask_loaded_models"
    )
    assert loaded >= 2, "both gunicorn workers loaded the model deployed through one of them"
    assert run_ids == {deployed["runs"]["good"].run_id}


def test_redeploy_replaces_the_model_atomically(deployed):
    url, runs = deployed["url"], deployed["runs"]
    assert post(url, "/models", {"name": "swap", "run_id": runs["good"].run_id}).status_code == 200
    seen, errors, stop = set(), [], threading.Event()

    def hammer():
        while not stop.is_set():
            r = post(url, "/predict", {"model": "swap", "texts": FOUR})
            if r.status_code != 200:
                errors.append(r.status_code)
            else:
                seen.add(r.json()["run_id"])

    threads = [threading.Thread(target=hammer) for _ in range(3)]
    for t in threads:
        t.start()
    try:
        assert post(url, "/models", {"name": "swap", "run_id": runs["other"].run_id}).status_code == 200
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert errors == []
    after = post(url, "/predict", {"model": "swap", "texts": ["x"]}).json()["run_id"]
    assert after == runs["other"].run_id and runs["good"].run_id in seen


def test_failed_deploys_leave_the_deployed_set_unchanged(deployed):
    url = deployed["url"]
    before = requests.get(url + "/models", timeout=5).json()
    cases = [
        ({"name": "movie", "run_id": "0" * 32}, 404),
        ({"name": "movie", "metric": "no_such_metric"}, 404),
        ({"name": "movie", "run_id": "../../etc/passwd"}, 404),
    ]
    for body, status in cases:
        response = post(url, "/models", body)
        assert response.status_code == status and "error" in response.json()
    assert requests.get(url + "/models", timeout=5).json() == before


def test_concurrent_deploy_remove_predict(deployed):
    url, runs = deployed["url"], deployed["runs"]
    names = ["c1", "c2"]

    def act(i):
        name = names[i % 2]
        kind = i % 3
        if kind == 0:
            return post(url, "/models", {"name": name, "run_id": runs["good"].run_id}).status_code
        if kind == 1:
            return requests.delete(f"{url}/models/{name}", timeout=60).status_code
        return post(url, "/predict", {"model": name, "texts": ["great"]}).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(act, range(36)))
    assert set(statuses) <= {200, 404, 409}, statuses
    assert 200 in statuses
    assert requests.get(url + "/health", timeout=5).status_code == 200
    log_text = deployed["log"].read_text()
    assert "Traceback" not in log_text and "[ERROR]" not in log_text


def test_a_run_that_fails_to_deploy_leaves_the_alias_where_it_was(mlflask, tmp_path):
    """POST /models promotes on job 4's path: when the new version cannot be served, the alias moves back."""
    import mlflow
    from mlflow.tracking import MlflowClient

    runs, url, name = mlflask["runs"], mlflask["url"], "rollback-movie"
    assert post(url, "/models", {"name": name, "run_id": runs["good"].run_id}).status_code == 200
    tracking = MlflowClient(runs["env"]["MLFLOWSERVER_URL"])
    before = tracking.get_model_version_by_alias(name, "champion").version

    # A FINISHED run of the experiment whose logged model has lost its graphs: registrable, not loadable.
    mlflow.set_tracking_uri(runs["env"]["MLFLOWSERVER_URL"])
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{before}", dst_path=str(tmp_path)))
    weights = list(local.rglob("*.onnx"))
    assert weights
    for path in weights:
        path.unlink()
    experiment = tracking.get_experiment_by_name(runs["env"]["MLFLOW_EXP_NAME"]).experiment_id
    with mlflow.start_run(experiment_id=experiment, run_name="cannot-load") as run:
        mlflow.log_artifacts(str(local), "model")

    response = post(url, "/models", {"name": name, "run_id": run.info.run_id})
    assert response.status_code == 422, response.text
    assert "not a loadable text classifier" in response.json()["error"]
    versions = {v.version: v.run_id for v in tracking.search_model_versions(f"name = '{name}'")}
    assert run.info.run_id in versions.values()  # it was registered, and the alias was moved to it...
    assert tracking.get_model_version_by_alias(name, "champion").version == before  # ...and back
    assert requests.get(f"{url}/models/{name}", timeout=10).json()["version"] == before


def test_after_a_deploy_every_worker_serves_the_new_version_without_loading_on_a_request(mlflask):
    """POST /models returns once both workers hold the version; then no request pays a load, and a redeploy
    is taken the same way (the old version answers until each worker holds the new one)."""
    url, runs, name = mlflask["url"], mlflask["runs"], "warm-movie"
    for run in (runs["good"], runs["other"]):
        response = post(url, "/models", {"name": name, "run_id": run.run_id})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["workers"] == {"workers": 2, "loaded": 2, "pending": []}, body["workers"]
        answers = []
        for _ in range(40):  # new connections: gunicorn spreads them over both workers
            answer = requests.post(url + "/predict", json={"model": name, "texts": ["great"]}, timeout=30)
            assert answer.status_code == 200, answer.text
            answers.append(answer.json()["run_id"])
        assert set(answers) == {run.run_id}
    assert f"loads {name} version" not in mlflask["log"].read_text(), "a request paid a load"
