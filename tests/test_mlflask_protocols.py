"""MLFlask's protocols, against a live `python -m apps.mlflask` with two workers: MLflow scoring, KServe V2 with
the Triton client, the generated OpenAPI spec (fuzzed by schemathesis, rendered in Chromium), the legacy body,
chunked bodies and request ids."""

import json
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings

from tests.helpers.mlflask import metric

NAME = "protocols"


def test_the_mlflow_scoring_protocol(live):
    url = live["url"] + "/invocations?model=" + NAME
    assert requests.get(live["url"] + "/ping", timeout=5).status_code == 200
    assert requests.get(live["url"] + "/version", timeout=5).text.count(".") >= 1
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
    ghost = requests.post(live["url"] + "/invocations?model=ghost", json={"inputs": ["a"]}, timeout=30)
    assert ghost.status_code == 404 and ghost.json()["error_code"] == "RESOURCE_DOES_NOT_EXIST"


def test_kserve_v2_with_the_triton_client(live):
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=live["url"].removeprefix("http://"))
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
    native = requests.post(live["url"] + "/predict", json={"model": NAME, "texts": texts}, timeout=30).json()
    assert labels == [p["label"] for p in native["predictions"]]
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    assert result.get_response()["id"] == "r1"


def test_the_triton_client_with_its_defaults_binary_tensors_included(live):
    import numpy as np
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url=live["url"].removeprefix("http://"))
    texts = ["A brilliant, moving film.", "A dreadful, boring film."]
    tensor = httpclient.InferInput("text", [2], "BYTES")
    tensor.set_data_from_numpy(np.array(texts, dtype=object))  # binary_data=True: the client's default
    result = client.infer(NAME, [tensor])
    labels = [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label")]
    native = requests.post(live["url"] + "/predict", json={"model": NAME, "texts": texts}, timeout=30).json()
    assert labels == [p["label"] for p in native["predictions"]]
    outputs = [httpclient.InferRequestedOutput("probabilities")]  # binary_data=True by default here too
    assert client.infer(NAME, [tensor], outputs=outputs).as_numpy("probabilities").shape == (2, 2)


def test_v2_metrics_have_their_own_labels_and_infer_latency_is_recorded(live):
    url = live["url"]
    before = metric(url, "mlflask_requests_total", endpoint="v2_ready")
    latency_before = metric(url, "mlflask_predict_latency_seconds_count", model=NAME)
    requests.get(url + "/v2/health/ready", timeout=5)
    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["A fine film."]}]}
    assert requests.post(f"{url}/v2/models/{NAME}/infer", json=body, timeout=30).status_code == 200
    assert metric(url, "mlflask_requests_total", endpoint="v2_ready") == before + 1
    assert metric(url, "mlflask_predict_latency_seconds_count", model=NAME) == latency_before + 1


def test_openapi_is_generated_and_swagger_ui_is_served_offline(live):
    spec = requests.get(live["url"] + "/openapi.json", timeout=5).json()
    assert spec["openapi"] == "3.1.0"
    assert {"/v2/models/{name}/infer", "/models/{name}", "/invocations", "/ping"} <= set(spec["paths"])
    assert "experiment_id" in spec["components"]["schemas"]["ModelInfo"]["properties"]
    page = requests.get(live["url"] + "/docs", timeout=5).text
    assert "/docs/swagger-ui-bundle.js" in page and "http" not in page.split("<script>")[-1].split("url:")[0]
    assert requests.get(live["url"] + "/docs/swagger-ui-bundle.js", timeout=5).status_code == 200


def test_no_input_from_the_spec_gives_a_5xx(live):
    """schemathesis against the live server's own /openapi.json: a bounded number of examples per operation."""
    schema = schemathesis.openapi.from_url(live["url"] + "/openapi.json")
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        def call(case):
            if case.method == "DELETE":  # keep the deployed model the other operations use
                case.path_parameters = {"name": "ghost"}
            response = case.call(base_url=live["url"], timeout=120)
            checked.append(response.status_code)
            assert response.status_code < 500 or (
                response.status_code == 503 and response.headers.get("Retry-After")
            ), f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"

        call()
    assert len(checked) >= 40 and not [code for code in checked if code >= 500 and code != 503]


def test_docs_render_the_spec_in_chromium(live):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import chromium

    driver = chromium()
    try:
        driver.get(live["url"] + "/docs")
        operations = WebDriverWait(driver, 30).until(
            expected_conditions.presence_of_all_elements_located((By.CSS_SELECTOR, ".opblock-summary-path"))
        )
        paths = {element.get_attribute("data-path") or element.text for element in operations}
        assert "/predict" in paths and "/v2/models/{name}/infer" in paths, paths
        page = driver.find_element(By.TAG_NAME, "body").text
        assert "does not specify a valid version field" not in page and "Unable to render" not in page
    finally:
        driver.quit()


def test_the_legacy_body_is_queued_like_any_prediction(live):
    body = {"model": NAME, "data": [[[2, 5, 6, 3]], [[1, 1, 1, 1]]]}
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda _: requests.post(live["url"] + "/predict", json=body, timeout=60), range(16)))
    assert {a.status_code for a in answers} == {200} and len({a.json()["response"] for a in answers}) == 1


def test_a_chunked_body_is_read_within_the_size_limit(live):
    body = json.dumps({"model": NAME, "texts": ["A fine film."]}).encode()
    chunks = (body[i : i + 7] for i in range(0, len(body), 7))  # requests sends a generator chunked
    answer = requests.post(
        live["url"] + "/predict", data=chunks, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    huge = (b"x" * 65536 for _ in range(64))  # 4 MiB, past MLFLASK_MAX_BODY
    answer = requests.post(
        live["url"] + "/predict", data=huge, headers={"Content-Type": "application/json"}, timeout=30
    )
    assert answer.status_code == 413 and answer.json()["error"]


def test_every_answer_carries_a_request_id_that_the_log_keeps(live):
    mine = requests.post(
        live["url"] + "/predict",
        json={"model": "ghost", "texts": ["a"]},
        headers={"X-Request-ID": "trace-42"},
        timeout=10,
    )
    assert mine.status_code == 404 and mine.headers["X-Request-ID"] == "trace-42"
    logged = requests.get(live["url"] + "/logs?limit=50", timeout=5).json()["logs"]
    assert any(entry.get("request_id") == "trace-42" for entry in logged)
    for header in ({}, {"X-Request-ID": "bad id with spaces\\n" * 10}):
        answer = requests.get(live["url"] + "/health", headers=header, timeout=5)
        assert len(answer.headers["X-Request-ID"]) == 32 and answer.headers["X-Request-ID"] != header.get(
            "X-Request-ID"
        )
