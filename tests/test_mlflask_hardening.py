"""MLFlask hardened, against live `python -m apps.mlflask` servers with two workers: bounded memory and logs,
backpressure, summed metrics, open protocols (MLflow scoring, KServe V2), the generated spec fuzzed by
schemathesis, and locked-down defaults."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import PLATFORM_VARS, env_without, free_port, start_mlflask, stop_process

NAME = "hard"


@pytest.fixture(scope="module")
def hard(mlflask):
    """`hard` pinned to version 1 of a registered model of the good run."""
    response = requests.post(
        mlflask["url"] + "/models", json={"name": NAME, "run_id": mlflask["runs"]["good"].run_id}, timeout=120
    )
    assert response.status_code == 200, response.text
    return mlflask


def _metric(url: str, name: str, **labels) -> float:
    total = 0.0
    for family in text_string_to_metric_families(requests.get(url + "/metrics", timeout=10).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_counters_add_up_across_workers_and_labels_are_only_deployed_names(hard):
    url = hard["url"]
    before = _metric(url, "mlflask_requests_total", endpoint="ready")
    for _ in range(20):  # new connection each time, so both workers answer some
        requests.get(url + "/ready", timeout=5, headers={"Connection": "close"})
    assert _metric(url, "mlflask_requests_total", endpoint="ready") == before + 20

    injected = 'evil"} 1\nmlflask_fake_total 99\n{'
    for model in (injected, "x" * 100_000, "ghost"):
        requests.post(url + "/predict", json={"model": model, "texts": ["a"]}, timeout=10)
    page = requests.get(url + "/metrics", timeout=10).text
    families = {family.name for family in text_string_to_metric_families(page)}  # parses: nothing injected
    assert "mlflask_fake" not in families and "evil" not in page and len(page) < 200_000
    models = {s.labels.get("model") for f in text_string_to_metric_families(page) for s in f.samples}
    deployed = {m["name"] for m in requests.get(url + "/models", timeout=5).json()["models"]}
    assert models <= {None, "", "unknown"} | deployed
    logs = requests.get(url + "/logs?limit=5000", timeout=10)
    assert len(logs.content) < 2_000_000 and "x" * 1000 not in logs.text


def test_redeploys_release_the_old_model_and_lru_caps_what_is_loaded(serving_runs, tmp_path):
    env = {**serving_runs["env"], "MLFLASK_MAX_MODELS": "2", "MLFLASK_FOLLOW_INTERVAL": "0"}
    url, process, _, _ = start_mlflask(tmp_path, env, workers=2)
    try:
        for i in range(6):  # redeploys of one name: each replaces (and frees) the last
            body = {"name": "again", "run_id": serving_runs["good" if i % 2 else "other"].run_id}
            assert requests.post(url + "/models", json=body, timeout=120).status_code == 200
        for _ in range(10):
            requests.post(url + "/predict", json={"model": "again", "texts": ["ok"]}, timeout=30)
        assert _metric(url, "mlflask_loaded_models") <= 2, "at most one model per worker after six redeploys"

        for name in ("m1", "m2", "m3"):
            body = {"name": name, "model_uri": "models:/again/1"}
            assert requests.post(url + "/models", json=body, timeout=120).status_code == 200
        for _ in range(3):
            for name in ("m1", "m2", "m3", "again"):
                answer = requests.post(url + "/predict", json={"model": name, "texts": ["ok"]}, timeout=60)
                assert answer.status_code == 200, "an unloaded model is reloaded on demand"
        assert _metric(url, "mlflask_loaded_models") <= 4, "MLFLASK_MAX_MODELS=2 per worker"
    finally:
        stop_process(process)


def test_a_full_queue_or_a_timeout_is_503_with_retry_after(serving_runs, tmp_path):
    env = {**serving_runs["env"], "MLFLASK_PREDICT_TIMEOUT": "0.000001", "MLFLASK_FOLLOW_INTERVAL": "0"}
    url, process, log_path, _ = start_mlflask(tmp_path, env, workers=2)
    try:
        body = {"name": "slow", "run_id": serving_runs["good"].run_id}
        assert requests.post(url + "/models", json=body, timeout=120).status_code == 200
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda _: requests.post(
                        url + "/predict", json={"model": "slow", "texts": ["x " * 100] * 8}, timeout=30
                    ),
                    range(16),
                )
            )
        refused = [a for a in answers if a.status_code == 503]
        assert refused and {a.status_code for a in answers} <= {200, 503}, "a prediction that waits too long is a 503"
        assert all(a.headers["Retry-After"] == "1" and "retry later" in a.json()["error"] for a in refused)
        assert "Traceback" not in log_path.read_text()
    finally:
        stop_process(process)


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
            "/v2/models/hard/infer",
            {"inputs": [{"name": "t", "shape": [2], "datatype": "FP32", "data": [1, 2]}]},
            400,
            "BYTES",
        ),
        (
            "POST",
            "/v2/models/hard/infer",
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
def test_inputs_that_once_gave_500s(hard, method, path, body, status, fragment):
    kwargs = (
        {"data": body, "headers": {"Content-Type": "application/json"}} if isinstance(body, str) else {"json": body}
    )
    response = requests.request(method, hard["url"] + path, timeout=30, **kwargs)
    assert response.status_code == status, response.text
    assert fragment in response.json()["error"] and "Traceback" not in response.text
    assert "127.0.0.1" not in response.text, "no internal address in a public error"


def test_the_servable_is_served_as_job_3_checked_it(hard):
    import json

    import mlflow

    served = requests.get(hard["url"] + "/models/" + NAME, timeout=5).json()
    mlflow.set_tracking_uri(hard["runs"]["env"]["MLFLOWSERVER_URL"])
    config = json.loads(mlflow.artifacts.load_text(f"runs:/{served['run_id']}/model/artifacts/servable/servable.json"))
    approved = config["check"]["int8"]["passed"]  # MLFLASK_QUANTIZE=auto: int8 only where job 3 passed it
    assert config["int8"] is approved and config["check"]["fp32"]["passed"]
    assert served["backend"] == ("onnx-int8" if approved else "onnx") and served["quantized"] is approved
    deploys = [
        e for e in requests.get(hard["url"] + "/logs?limit=200", timeout=5).json()["logs"] if e["action"] == "deploy"
    ]
    assert any(e.get("backend") == served["backend"] for e in deploys)


def test_a_broken_servable_is_refused_and_the_deployed_set_stays(hard, tmp_path):
    import mlflow
    from mlflow.tracking import MlflowClient

    env = hard["runs"]["env"]
    mlflow.set_tracking_uri(env["MLFLOWSERVER_URL"])
    local = mlflow.artifacts.download_artifacts(f"models:/{NAME}/1", dst_path=str(tmp_path / "model"))
    for graph in (tmp_path / "model").rglob("*.onnx"):
        graph.write_bytes(b"this is no ONNX graph")
    experiment = MlflowClient(env["MLFLOWSERVER_URL"]).get_experiment_by_name(env["MLFLOW_EXP_NAME"]).experiment_id
    with mlflow.start_run(experiment_id=experiment, run_name="bad-export") as run:
        mlflow.log_artifacts(local, "model")
    version = mlflow.register_model(f"runs:/{run.info.run_id}/model", "bad-export").version
    before = requests.get(hard["url"] + "/models", timeout=5).json()
    body = {"name": "bad-export", "model_uri": f"models:/bad-export/{version}"}
    response = requests.post(hard["url"] + "/models", json=body, timeout=300)
    assert response.status_code == 422 and "not a loadable text classifier" in response.json()["error"]
    assert requests.get(hard["url"] + "/models", timeout=5).json() == before


def test_the_mlflow_scoring_protocol(hard):
    url = hard["url"] + "/invocations?model=" + NAME
    assert requests.get(hard["url"] + "/ping", timeout=5).status_code == 200
    assert requests.get(hard["url"] + "/version", timeout=5).text.count(".") >= 1
    bodies = [
        {"inputs": ["A brilliant film.", "Awful."]},
        {"instances": ["A brilliant film.", "Awful."]},
        {"dataframe_split": {"columns": ["text"], "data": [["A brilliant film."], ["Awful."]]}},
        {"dataframe_records": [{"text": "A brilliant film."}, {"text": "Awful."}]},
    ]
    answers = [requests.post(url, json=body, timeout=30).json()["predictions"] for body in bodies]
    csv = requests.post(url, data="text\nA brilliant film.\nAwful.\n", headers={"Content-Type": "text/csv"}, timeout=30)
    answers.append(csv.json()["predictions"])
    ids = [p.pop("prediction_id") for a in answers for p in a]  # every answer has its own id in the prediction log
    assert len(set(ids)) == len(ids) == 10 and all(len(i) == 32 for i in ids)
    assert all(len(a) == 2 and a == answers[0] for a in answers), answers
    both = requests.post(url, json={"inputs": ["a"], "instances": ["b"]}, timeout=30)
    assert (
        both.status_code == 400
        and both.json()["error_code"] == "BAD_REQUEST"
        and "exactly one" in both.json()["message"]
    )
    ghost = requests.post(hard["url"] + "/invocations?model=ghost", json={"inputs": ["a"]}, timeout=30)
    assert ghost.status_code == 404 and ghost.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_kserve_v2_with_the_triton_client(hard):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=hard["url"].removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready(NAME)
    metadata = client.get_model_metadata(NAME)
    assert metadata["inputs"][0] == {"name": "text", "datatype": "BYTES", "shape": [-1]}
    assert {o["name"] for o in metadata["outputs"]} == {"label", "probabilities"}
    texts = ["A brilliant, moving film.", "A dreadful, boring film."]
    tensor = httpclient.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object), binary_data=False)
    outputs = [httpclient.InferRequestedOutput(n, binary_data=False) for n in ("label", "probabilities")]
    result = client.infer(NAME, [tensor], outputs=outputs, request_id="r1")
    labels = [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label")]
    probabilities = result.as_numpy("probabilities")
    native = requests.post(hard["url"] + "/predict", json={"model": NAME, "texts": texts}, timeout=30).json()
    assert labels == [p["label"] for p in native["predictions"]]
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert result.get_response()["id"] == "r1"


def test_openapi_is_generated_and_swagger_ui_is_served_offline(hard):
    spec = requests.get(hard["url"] + "/openapi.json", timeout=5).json()
    assert spec["openapi"] == "3.1.0"
    assert {"/v2/models/{name}/infer", "/models/{name}", "/invocations", "/ping"} <= set(spec["paths"])
    assert "experiment_id" in spec["components"]["schemas"]["ModelInfo"]["properties"]
    page = requests.get(hard["url"] + "/docs", timeout=5).text
    assert "/docs/swagger-ui-bundle.js" in page and "http" not in page.split("<script>")[-1].split("url:")[0]
    assert requests.get(hard["url"] + "/docs/swagger-ui-bundle.js", timeout=5).status_code == 200


def test_no_input_from_the_spec_gives_a_5xx(hard):
    """schemathesis against the live server's own /openapi.json: a bounded number of examples per operation."""
    schema = schemathesis.openapi.from_url(hard["url"] + "/openapi.json")
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def call(case):
            if case.method == "DELETE":  # keep the deployed model the other operations use
                case.path_parameters = {"name": "ghost"}
            response = case.call(base_url=hard["url"], timeout=120)
            checked.append(response.status_code)
            assert response.status_code < 500 or (
                response.status_code == 503 and response.headers.get("Retry-After")
            ), f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"

        call()
    assert len(checked) >= 40 and not [code for code in checked if code >= 500 and code != 503]


def test_open_bind_needs_a_token(serving_runs, tmp_path):
    env = {**env_without(*PLATFORM_VARS), **serving_runs["env"], "MLFLASK_HOST": "0.0.0.0", "MLFLASK_PORT": "1"}
    refused = subprocess.run(
        [sys.executable, "-m", "apps.mlflask"], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1 and "set MLFLASK_TOKEN" in refused.stderr and "Traceback" not in refused.stderr
    port = free_port()
    opened = subprocess.Popen(
        [sys.executable, "-m", "apps.mlflask"],
        env={**env, "MLFLASK_ALLOW_OPEN": "1", "MLFLASK_PORT": str(port), "MLFLASK_STORE": str(tmp_path)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        assert requests.get(f"http://127.0.0.1:{port}/health", timeout=2).ok
    finally:
        stop_process(opened)
