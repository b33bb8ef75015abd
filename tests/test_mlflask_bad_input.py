"""The bad-input matrix: every case gets its status and a JSON {"error": ...} body, and the server lives on."""

import pytest
import requests

BIG = "x" * (1 << 20)
J = {"Content-Type": "application/json"}


def _cases():
    p = "/predict"
    m = "/models"
    return [
        # (method, path, raw body or json, status, error fragment)
        ("POST", p, b"{not json", 400, "must be JSON"),
        ("POST", p, b"", 400, "must be JSON"),
        ("POST", p, b"[1, 2]", 400, "JSON object"),
        ("POST", p, b'"text"', 400, "JSON object"),
        ("POST", p, b"null", 400, "must be JSON"),
        ("POST", p, {"texts": ["a"]}, 400, "'model'"),
        ("POST", p, {"model": 3, "texts": ["a"]}, 400, "'model'"),
        ("POST", p, {"model": "", "texts": ["a"]}, 400, "'model'"),
        ("POST", p, {"model": "movie"}, 400, "'texts'"),
        ("POST", p, {"model": "movie", "texts": "just a string"}, 400, "'texts': Input should be a valid list"),
        ("POST", p, {"model": "movie", "texts": []}, 400, "at least 1 item"),
        ("POST", p, {"model": "movie", "texts": [1, 2]}, 400, "'texts.0': Input should be a valid string"),
        ("POST", p, {"model": "movie", "texts": ["ok", None]}, 400, "'texts.1': Input should be a valid string"),
        ("POST", p, {"model": "movie", "texts": [["nested"]]}, 400, "valid string"),
        ("POST", p, {"model": "movie", "texts": [{"a": 1}]}, 400, "valid string"),
        ("POST", p, {"model": "movie", "texts": ["a"] * 65}, 413, "MLFLASK_MAX_TEXTS"),
        ("POST", p, {"model": "movie", "texts": [BIG]}, 413, "too large"),
        ("POST", p, {"model": "ghost", "texts": ["a"]}, 404, "not deployed"),
        ("POST", p, {"model": "../../etc", "texts": ["a"]}, 404, "not deployed"),
        ("POST", p, {"model": "movie", "data": "ids"}, 400, "'data': Input should be a valid list"),
        ("POST", p, {"model": "movie", "data": [[[1, 2]]]}, 400, "[input_ids, attention_mask]"),
        ("POST", p, {"model": "movie", "data": [[[1, 2]], [[1]]]}, 400, "same rectangular shape"),
        ("POST", p, {"model": "movie", "data": [[[1, "a"]], [[1, 1]]]}, 400, "valid integer"),
        ("POST", p, {"model": "movie", "data": [[[1, 99999999]], [[1, 1]]]}, 400, "input_ids must be between"),
        ("POST", p, {"model": "movie", "data": [[[1, -1]], [[1, 1]]]}, 400, "input_ids must be between"),
        ("POST", p, {"model": "movie", "data": [[[1, 2]], [[1, 7]]]}, 400, "0 or 1"),
        ("POST", p, {"model": "movie", "data": [[], []]}, 400, "non-empty"),
        ("POST", "/invocations?model=movie", {"nothing": 1}, 400, "Extra inputs are not permitted"),
        ("POST", "/invocations?model=movie", {}, 400, "exactly one of: inputs, instances"),
        ("POST", "/invocations?model=movie", {"inputs": []}, 400, "at least one text"),
        ("POST", "/invocations?model=movie", {"inputs": [1]}, 400, "valid string"),
        ("POST", "/invocations?model=movie", {"dataframe_records": [{"a": "x", "b": "y"}]}, 400, "one-column"),
        ("POST", "/invocations?model=movie", {"dataframe_split": {"data": "x"}}, 400, "dataframe_split"),
        ("POST", "/invocations?model=ghost", {"inputs": ["x"]}, 404, "not deployed"),
        ("POST", m, {"name": "ok-name"}, 400, "'run_id'"),
        ("POST", m, {"name": "bad name!", "metric": "val_f1"}, 422, "model name"),
        ("POST", m, {"name": "../etc", "metric": "val_f1"}, 422, "model name"),
        ("POST", m, {"name": "..", "metric": "val_f1"}, 422, "model name"),
        ("POST", m, {"name": "a" * 65, "metric": "val_f1"}, 422, "model name"),
        ("POST", m, {"name": 5, "metric": "val_f1"}, 422, "model name"),
        ("POST", m, {"metric": "val_f1"}, 422, "model name"),
        ("POST", m, {"name": "x", "run_id": 12}, 400, "'run_id'"),
        ("POST", m, {"name": "x", "metric": ["val_f1"]}, 400, "'metric'"),
        ("POST", m, {"name": "x", "run_id": "not-a-run"}, 404, "invalid run id"),
        ("POST", m, {"name": "x", "run_id": "s3://bucket/evil"}, 404, "invalid run id"),
        ("POST", m, {"name": "x", "metric": "val_f1; DROP"}, 404, "invalid metric"),
        ("POST", m, b"{", 400, "must be JSON"),
        ("DELETE", "/models/ghost", None, 404, "not deployed"),
        ("DELETE", "/models/bad%20name", None, 422, "model name"),
        ("GET", "/logs?limit=abc", None, 400, "'limit'"),
        ("GET", "/logs?limit=0", None, 400, "'limit'"),
        ("GET", "/nope", None, 404, "no such endpoint"),
        ("PUT", "/predict", {"model": "movie"}, 405, "method not allowed"),
        ("GET", "/predict", None, 405, "method not allowed"),
    ]


CASES = _cases()


@pytest.fixture(scope="module")
def movie(mlflask):
    response = requests.post(
        mlflask["url"] + "/models", json={"name": "movie", "run_id": mlflask["runs"]["good"].run_id}, timeout=120
    )
    assert response.status_code == 200
    return mlflask


def test_matrix_is_large_enough():
    assert len(CASES) >= 40


@pytest.mark.parametrize(
    "method, path, body, status, fragment", CASES, ids=[f"{c[0]} {c[1]} {c[3]} {i}" for i, c in enumerate(CASES)]
)
def test_bad_input(movie, method, path, body, status, fragment):
    url = movie["url"] + path
    if isinstance(body, bytes):
        response = requests.request(method, url, data=body, headers=J, timeout=30)
    else:
        response = requests.request(method, url, json=body, timeout=30)
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    error = body["message"] if path.startswith("/invocations") else body["error"]  # MLflow's shape there
    assert isinstance(error, str) and fragment in error
    assert "Traceback" not in response.text
    assert requests.get(movie["url"] + "/health", timeout=5).status_code == 200


def test_no_worker_died_and_nothing_was_logged_as_an_error(movie):
    ok = requests.post(movie["url"] + "/predict", json={"model": "movie", "texts": ["fine"]}, timeout=30)
    assert ok.status_code == 200
    log_text = movie["log"].read_text()
    assert "Traceback" not in log_text and "Worker exiting" not in log_text and "WORKER TIMEOUT" not in log_text
