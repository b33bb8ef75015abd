"""MLFlask hardening, second pass (issue #22), against live `python -m apps.mlflask` servers: one bad text cannot
fail a batch, readiness means loaded, no internal address leaks, Host names are checked."""

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import free_port, start_mlflask, stop_process
from tests.test_mlflask_hardening import _metric

NAME = "hard2"


@pytest.fixture(scope="module")
def served(mlflask):
    response = requests.post(
        mlflask["url"] + "/models", json={"name": NAME, "run_id": mlflask["runs"]["good"].run_id}, timeout=120
    )
    assert response.status_code == 200, response.text
    return mlflask


def _post_raw(url: str, raw: str) -> requests.Response:
    return requests.post(url, data=raw.encode(), headers={"Content-Type": "application/json"}, timeout=60)


def test_a_lone_surrogate_fails_only_its_own_request(served):
    url = served["url"] + "/predict"
    clean = json.dumps({"model": NAME, "texts": ["A fine, moving film."]})
    poisoned = json.dumps({"model": NAME, "texts": ["bad \ud800 text"]})  # valid JSON ("\\ud800"), not Unicode
    bodies = [poisoned if i % 4 == 0 else clean for i in range(64)]
    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(lambda raw: _post_raw(url, raw), bodies))
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
        answer = _post_raw(served["url"] + path, raw)
        assert answer.status_code == 400, (path, answer.text)


def test_the_legacy_body_is_queued_like_any_prediction(served):
    body = {"model": NAME, "data": [[[2, 5, 6, 3]], [[1, 1, 1, 1]]]}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: requests.post(served["url"] + "/predict", json=body, timeout=60), range(16)))
    assert {a.status_code for a in answers} == {200} and len({a.json()["response"] for a in answers}) == 1


def test_v2_metrics_have_their_own_labels_and_infer_latency_is_recorded(served):
    url = served["url"]
    before = _metric(url, "mlflask_requests_total", endpoint="v2_ready")
    latency_before = _metric(url, "mlflask_predict_latency_seconds_count", model=NAME)
    requests.get(url + "/v2/health/ready", timeout=5)
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["A fine film."]}]}
    assert requests.post(f"{url}/v2/models/{NAME}/infer", json=body, timeout=30).status_code == 200
    assert _metric(url, "mlflask_requests_total", endpoint="v2_ready") == before + 1
    assert _metric(url, "mlflask_predict_latency_seconds_count", model=NAME) == latency_before + 1


def test_a_foreign_host_name_is_refused_on_a_loopback_mlflask(served):
    port = served["url"].rsplit(":", 1)[1]
    body = {"name": "rebound", "run_id": served["runs"]["good"].run_id}
    for host in (f"rebind.attacker.example:{port}", "rebind.attacker.example", f"127.0.0.1.nip.io:{port}"):
        answer = requests.post(served["url"] + "/models", json=body, headers={"Host": host}, timeout=60)
        assert answer.status_code == 400 and "MLFLASK_ALLOWED_HOSTS" in answer.json()["error"], host
    assert requests.get(served["url"] + "/models/rebound", timeout=5).status_code == 404
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert requests.get(served["url"] + "/health", headers={"Host": host}, timeout=5).status_code == 200


@pytest.fixture(scope="module")
def registry_names(served):
    """A registered model with no `champion` alias yet, for deployments that cannot be served at first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(served["runs"]["env"]["MLFLOWSERVER_URL"])
    name = "not-yet-champion"
    client.create_registered_model(name)
    version = client.create_model_version(
        name, f"runs:/{served['runs']['good'].run_id}/model", served["runs"]["good"].run_id
    )
    return {"client": client, "name": name, "version": version.version}


def test_ready_only_once_mlflask_deployments_are_loaded(served, registry_names, tmp_path):
    name = registry_names["name"]
    env = {
        **served["runs"]["env"],
        "MLFLASK_DEPLOYMENTS": f"movie=models:/{name}@champion",
        "MLFLASK_FOLLOW_INTERVAL": "1",
    }
    url, process, _, _ = start_mlflask(tmp_path, env, workers=2)
    try:
        for path in ("/ready", "/v2/health/ready"):
            waiting = requests.get(url + path, timeout=5)
            assert waiting.status_code == 503 and waiting.headers.get("Retry-After"), path
        assert "movie" in requests.get(url + "/ready", timeout=5).json()["error"]
        registry_names["client"].set_registered_model_alias(name, "champion", registry_names["version"])
        fresh = {"Connection": "close"}  # new connections: either worker may answer

        def all_ready() -> bool:
            return all(requests.get(url + "/ready", timeout=5, headers=fresh).status_code == 200 for _ in range(8))

        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all_ready():  # each worker loads it, then says so
            time.sleep(0.5)
        for _ in range(6):
            assert requests.get(url + "/ready", timeout=5, headers=fresh).status_code == 200
            assert requests.get(url + "/v2/health/ready", timeout=5, headers=fresh).json() == {"ready": True}
    finally:
        stop_process(process)


def test_errors_shown_without_a_token_name_no_internal_address(served, tmp_path):
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        **served["runs"]["env"],
        "MLFLOWSERVER_URL": dead,
        "MLFLASK_DEPLOYMENTS": "movie=models:/movie-sentiment@champion",
        "MLFLASK_FOLLOW_INTERVAL": "1",
    }
    url, process, log_path, _ = start_mlflask(tmp_path, env, workers=1)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not requests.get(url + "/logs", timeout=5).json()["logs"]:
            time.sleep(0.5)
        shown = requests.get(url + "/logs", timeout=5).text + requests.get(url + "/ready", timeout=5).text
        assert "follow_failed" in shown
        assert dead.removeprefix("http://") not in shown and "http://" not in shown
    finally:
        stop_process(process)


def test_redaction_covers_database_uris_and_passwords():
    from mlplatform.errors import redact, without_password

    message = "failed: postgresql+psycopg2://mlflow:s3cret@db:5432/mlflow; mysql://u:p@h/db and s3://b/k"
    assert "s3cret" not in redact(message) and "://" not in redact(message)
    assert without_password("postgresql://mlflow:s3cret@db:5432/mlflow") == "postgresql://db:5432/mlflow"


def test_docs_render_the_spec_in_chromium(served):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import chromium

    driver = chromium()
    try:
        driver.get(served["url"] + "/docs")
        operations = WebDriverWait(driver, 30).until(
            expected_conditions.presence_of_all_elements_located((By.CSS_SELECTOR, ".opblock-summary-path"))
        )
        paths = {element.get_attribute("data-path") or element.text for element in operations}
        assert "/predict" in paths and "/v2/models/{name}/infer" in paths, paths
        page = driver.find_element(By.TAG_NAME, "body").text
        assert "does not specify a valid version field" not in page and "Unable to render" not in page
    finally:
        driver.quit()


def test_a_model_that_fails_to_load_is_a_503_and_is_not_reloaded_on_every_request(served, tmp_path):
    run_id = served["runs"]["good"].run_id
    url, process, log_path, store = start_mlflask(
        tmp_path, {**served["runs"]["env"], "MLFLASK_MAX_MODELS": "1", "MLFLASK_FOLLOW_INTERVAL": "0"}, workers=1
    )
    try:
        for name in ("first", "second"):  # one model kept: deploying `second` unloads `first`
            answer = requests.post(url + "/models", json={"name": name, "run_id": run_id}, timeout=120)
            assert answer.status_code == 200, answer.text
        state = json.loads((store / "state.json").read_text())["models"]
        folder = store / "models" / state["first"]["deploy_id"]
        for graph in folder.rglob("*.onnx"):
            graph.unlink()
        answers = [
            requests.post(url + "/predict", json={"model": "first", "texts": ["ok"]}, timeout=60) for _ in range(5)
        ]
        assert {a.status_code for a in answers} == {503}, [a.text for a in answers]
        assert all(a.headers.get("Retry-After") and "could not be loaded" in a.json()["error"] for a in answers)
        assert log_path.read_text().count("could not load first") == 1, "tried once, then answered from memory"
        ok = requests.post(url + "/predict", json={"model": "second", "texts": ["ok"]}, timeout=60)
        assert ok.status_code == 200
    finally:
        stop_process(process)


def test_a_corrupt_state_file_gives_503s_while_health_answers(served, tmp_path):
    url, process, _, store = start_mlflask(
        tmp_path, {**served["runs"]["env"], "MLFLASK_FOLLOW_INTERVAL": "0"}, workers=1
    )
    try:
        (store / "state.json").write_text('{"models": ')
        assert requests.get(url + "/health", timeout=5).status_code == 200
        for method, path in (("get", "/models"), ("get", "/ready"), ("post", "/predict")):
            answer = getattr(requests, method)(url + path, json={"model": "x", "texts": ["a"]}, timeout=10)
            assert answer.status_code == 503 and answer.headers.get("Retry-After"), (path, answer.text)
            assert "state" in answer.json()["error"]
    finally:
        stop_process(process)


def test_junk_requests_cannot_rotate_the_deploy_history_away(served, tmp_path):
    env = {**served["runs"]["env"], "MLFLASK_FOLLOW_INTERVAL": "0", "MLFLASK_LOG_MAX_BYTES": "8192"}
    url, process, _, _ = start_mlflask(tmp_path, env, workers=1)
    try:
        answer = requests.post(
            url + "/models", json={"name": "kept", "run_id": served["runs"]["good"].run_id}, timeout=120
        )
        assert answer.status_code == 200
        with requests.Session() as session:
            for _ in range(300):  # far beyond what 8 KiB of log holds
                session.post(url + "/predict", json={"model": "ghost", "texts": ["a"]}, timeout=10)
        actions = requests.get(url + "/logs?failed_requests=0", timeout=5).json()["logs"]
        assert [entry["action"] for entry in actions] == ["deploy"]
        everything = requests.get(url + "/logs", timeout=5).json()["logs"]
        assert everything[0]["action"] == "failed_request"
    finally:
        stop_process(process)


def test_state_writes_of_the_same_size_in_one_clock_tick_are_both_seen(tmp_path):
    from apps.mlflask.store import ModelStore

    store = ModelStore(tmp_path / "store")
    store._write_state({"a": {"deploy_id": "1"}})
    assert store.read_state() == {"a": {"deploy_id": "1"}}
    mtime = (tmp_path / "store" / "state.json").stat().st_mtime_ns
    store._write_state({"a": {"deploy_id": "2"}})  # same size
    os.utime(tmp_path / "store" / "state.json", ns=(mtime, mtime))  # and the same clock tick
    assert store.read_state() == {"a": {"deploy_id": "2"}}


def test_a_chunked_body_is_read_within_the_size_limit(served):
    body = json.dumps({"model": NAME, "texts": ["A fine film."]}).encode()
    chunks = (body[i : i + 7] for i in range(0, len(body), 7))  # requests sends a generator chunked
    answer = requests.post(
        served["url"] + "/predict", data=chunks, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    huge = (b"x" * 65536 for _ in range(64))  # 4 MiB, past MLFLASK_MAX_BODY
    answer = requests.post(
        served["url"] + "/predict", data=huge, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code == 413 and answer.json()["error"]


def test_the_triton_client_with_its_defaults_binary_tensors_included(served):
    import numpy as np
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=served["url"].removeprefix("http://"))
    texts = ["A brilliant, moving film.", "A dreadful, boring film."]
    tensor = httpclient.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object))  # binary_data=True: the client's default
    result = client.infer(NAME, [tensor])
    labels = [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label")]
    native = requests.post(served["url"] + "/predict", json={"model": NAME, "texts": texts}, timeout=30).json()
    assert labels == [p["label"] for p in native["predictions"]]
    outputs = [httpclient.InferRequestedOutput("probabilities")]  # binary_data=True by default here too
    assert client.infer(NAME, [tensor], outputs=outputs).as_numpy("probabilities").shape == (2, 2)


def test_every_answer_carries_a_request_id_that_the_log_keeps(served):
    mine = requests.post(
        served["url"] + "/predict",
        json={"model": "ghost", "texts": ["a"]},
        headers={"X-Request-ID": "trace-42"},
        timeout=10,
    )
    assert mine.status_code == 404 and mine.headers["X-Request-ID"] == "trace-42"
    logged = requests.get(served["url"] + "/logs?limit=50", timeout=5).json()["logs"]
    assert any(entry.get("request_id") == "trace-42" for entry in logged)
    for header in ({}, {"X-Request-ID": "bad id with spaces\\n" * 10}):
        answer = requests.get(served["url"] + "/health", headers=header, timeout=5)
        assert len(answer.headers["X-Request-ID"]) == 32 and answer.headers["X-Request-ID"] != header.get(
            "X-Request-ID"
        )
