"""Running MLFlask, against live `python -m apps.mlflask` servers with two workers: metrics summed across
workers, memory released on redeploys, backpressure (503 with Retry-After), readiness only once loaded, and the
locked-down defaults (a token off loopback, known Host names, no internal address or secret in errors)."""

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers.inprocess import mlflask_app
from tests.helpers.mlflask import metric
from tests.helpers.services import PLATFORM_VARS, env_without, free_port, start_mlflask, stop_process

NAME = "operations"


def test_counters_add_up_across_workers_and_labels_are_only_deployed_names(live):
    url = live["url"]
    before = metric(url, "mlflask_requests_total", endpoint="ready")
    for _ in range(20):  # new connection each time, so both workers answer some
        requests.get(url + "/ready", timeout=5, headers={"Connection": "close"})
    assert metric(url, "mlflask_requests_total", endpoint="ready") == before + 20

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
        assert metric(url, "mlflask_loaded_models") <= 2, "at most one model per worker after six redeploys"

        for name in ("m1", "m2", "m3"):
            body = {"name": name, "model_uri": "models:/again/1"}
            assert requests.post(url + "/models", json=body, timeout=120).status_code == 200
        for _ in range(3):
            for name in ("m1", "m2", "m3", "again"):
                answer = requests.post(url + "/predict", json={"model": name, "texts": ["ok"]}, timeout=60)
                assert answer.status_code == 200, "an unloaded model is reloaded on demand"
        assert metric(url, "mlflask_loaded_models") <= 4, "MLFLASK_MAX_MODELS=2 per worker"
    finally:
        stop_process(process)


def test_a_full_queue_or_a_timeout_is_503_with_retry_after(serving_runs, tmp_path, caplog):
    """In process, 8 threads at once (the worker's own thread pool does the same): a prediction that waits too long
    in the micro-batcher is a 503 with Retry-After, never a 500."""
    env = {**serving_runs["env"], "MLFLASK_PREDICT_TIMEOUT": "0.000001", "MLFLASK_FOLLOW_INTERVAL": "0"}
    with mlflask_app(tmp_path, env) as (client, app, _):
        assert client.post("/models", json={"name": "slow", "run_id": serving_runs["good"].run_id}).status_code == 200
        body = {"model": "slow", "texts": ["x " * 100] * 8}
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: app.test_client().post("/predict", json=body), range(16)))
        refused = [a for a in answers if a.status_code == 503]
        assert refused and {a.status_code for a in answers} <= {200, 503}, "a prediction that waits too long is a 503"
        assert all(a.headers["Retry-After"] == "1" and "retry later" in a.get_json()["error"] for a in refused)
        assert "Traceback" not in caplog.text


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


def test_a_foreign_host_name_is_refused_on_a_loopback_mlflask(live):
    port = live["url"].rsplit(":", 1)[1]
    body = {"name": "rebound", "run_id": live["runs"]["good"].run_id}
    for host in (f"rebind.attacker.example:{port}", "rebind.attacker.example", f"127.0.0.1.nip.io:{port}"):
        answer = requests.post(live["url"] + "/models", json=body, headers={"Host": host}, timeout=60)
        assert answer.status_code == 400 and "MLFLASK_ALLOWED_HOSTS" in answer.json()["error"], host
    assert requests.get(live["url"] + "/models/rebound", timeout=5).status_code == 404
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}"):
        assert requests.get(live["url"] + "/health", headers={"Host": host}, timeout=5).status_code == 200


@pytest.fixture(scope="module")
def registry_names(live):
    """A registered model with no `champion` alias yet, for deployments that cannot be served at first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(live["runs"]["env"]["MLFLOWSERVER_URL"])
    name = "not-yet-champion"
    client.create_registered_model(name)
    version = client.create_model_version(
        name, f"runs:/{live['runs']['good'].run_id}/model", live["runs"]["good"].run_id
    )
    return {"client": client, "name": name, "version": version.version}


def test_ready_only_once_mlflask_deployments_are_loaded(live, registry_names, tmp_path):
    name = registry_names["name"]
    env = {
        **live["runs"]["env"],
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
        # each worker follows the alias; the version was deployed once (a second deploy of it by a worker that read
        # the state before the first one landed gave every worker a new deploy id to load: /ready flapped, #33)
        logs = requests.get(url + "/logs?limit=200", timeout=5).json()["logs"]
        deploys = [e for e in logs if e.get("model") == "movie" and e["action"] in ("restore", "follow", "deploy")]
        assert len(deploys) == 1, deploys
    finally:
        stop_process(process)


def test_errors_shown_without_a_token_name_no_internal_address(serving_runs, tmp_path):
    """In process: MLflow down, the follower fails; what /logs and /ready show names no internal address."""
    dead = f"http://127.0.0.1:{free_port()}"
    env = {
        **serving_runs["env"],
        "MLFLOWSERVER_URL": dead,
        "MLFLASK_DEPLOYMENTS": "movie=models:/movie-sentiment@champion",
        "MLFLASK_FOLLOW_INTERVAL": "1",
    }
    with mlflask_app(tmp_path, env) as (client, _, _):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not client.get("/logs").get_json()["logs"]:
            time.sleep(0.5)
        shown = client.get("/logs").get_data(as_text=True) + client.get("/ready").get_data(as_text=True)
        assert "follow_failed" in shown
        assert dead.removeprefix("http://") not in shown and "http://" not in shown


def test_redaction_covers_database_uris_and_passwords():
    from mlplatform.errors import redact, without_password

    message = "failed: postgresql+psycopg2://mlflow:s3cret@db:5432/mlflow; mysql://u:p@h/db and s3://b/k"
    assert "s3cret" not in redact(message) and "://" not in redact(message)
    assert without_password("postgresql://mlflow:s3cret@db:5432/mlflow") == "postgresql://db:5432/mlflow"
