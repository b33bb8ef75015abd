"""Registry-driven serving: job 4 moves the alias, two MLFlask processes with separate stores follow it, a broken
version never replaces a working one, and an empty store is rebuilt from MLFLASK_DEPLOYMENTS."""

import threading
import time

import boto3
import mlflow
import pytest
import requests
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from jobs import model_deployment
from mlplatform.registry.promotion import ModelRef
from mlplatform.serving.client import MLFlaskClient
from tests.helpers.inprocess import mlflask_app
from tests.helpers.services import start_mlflask, stop_process

pytestmark = pytest.mark.live
NAME = "follow-movie"
INTERVAL = 1.0


@pytest.fixture(scope="module")
def replicas(serving_runs, tmp_path_factory):
    """Two MLFlask processes, separate stores, both told to serve models:/follow-movie@champion."""
    env = {
        **serving_runs["env"],
        "MLFLASK_FOLLOW_INTERVAL": str(INTERVAL),
        "MLFLASK_DEPLOYMENTS": f"{NAME}=models:/{NAME}@champion",
    }
    started = [start_mlflask(tmp_path_factory.mktemp(f"replica-{i}"), env, workers=2 - i) for i in range(2)]
    try:
        yield {"urls": [s[0] for s in started], "started": started, "env": env, "runs": serving_runs}
    finally:
        for _, process, _, _ in started:
            stop_process(process)


def _served(url: str) -> dict | None:
    return MLFlaskClient(url, timeout=5, retries=1).model(NAME)


def _wait_for_version(urls: list[str], version: str, timeout: float) -> float:
    """Seconds until every replica serves `version` (a bounded wait)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if all((_served(url) or {}).get("version") == version for url in urls):
            return time.monotonic() - started
        time.sleep(0.1)
    raise AssertionError(f"not every replica serves version {version}: {[_served(u) for u in urls]}")


def _deploy(monkeypatch, replicas, url: str, *args: str) -> None:
    """Job 4 against one replica, configured by env vars as a user would."""
    for name, value in {**replicas["runs"]["env"], "MLFLASK_URL": url}.items():
        monkeypatch.setenv(name, value)
    assert model_deployment.main(["--name", NAME, *args]) == 0


def test_replicas_follow_the_alias_without_a_shared_disk(replicas, monkeypatch):
    runs, (first, second) = replicas["runs"], replicas["urls"]
    registry = MlflowClient(runs["env"]["MLFLOWSERVER_URL"])

    _deploy(monkeypatch, replicas, first, "--run-id", runs["good"].run_id)  # registers v1 and sets the alias
    _wait_for_version([first, second], "1", timeout=2 * INTERVAL + 30)  # the second one restores it on its own
    assert _served(second)["run_id"] == runs["good"].run_id and _served(second)["alias"] == "champion"

    # Job 4 moves the alias to a new version; the replica it did not call follows, under load.
    statuses: list[int] = []
    stop = threading.Event()

    def load():
        for _ in range(2000):  # bounded
            if stop.is_set():
                return
            response = requests.post(second + "/predict", json={"model": NAME, "texts": ["A fine film."]}, timeout=30)
            statuses.append(response.status_code)

    loader = threading.Thread(target=load)
    loader.start()
    try:
        # the gate would refuse the untaught run: register it by hand and move the alias with job 4's --version
        version = mlflow.register_model(f"runs:/{runs['other'].run_id}/model", NAME).version
        _deploy(monkeypatch, replicas, first, "--version", str(version))
        assert registry.get_model_version_by_alias(NAME, "champion").version == "2"
        _wait_for_version([first, second], "2", timeout=2 * INTERVAL + 30)
        time.sleep(0.5)
    finally:
        stop.set()
        loader.join(60)
    assert statuses and set(statuses) == {200}, f"{len(statuses)} requests during the swap: {set(statuses)}"

    # Rollback with job 4, then a move with the MLflow client alone: both replicas follow each time.
    _deploy(monkeypatch, replicas, first, "--version", "1")
    _wait_for_version([first, second], "1", timeout=2 * INTERVAL + 30)
    registry.set_registered_model_alias(NAME, "champion", "2")
    _wait_for_version([first, second], "2", timeout=2 * INTERVAL + 30)
    assert _served(first)["run_id"] == _served(second)["run_id"] == runs["other"].run_id


def test_a_broken_version_leaves_the_old_one_serving(replicas, mlflow_server, tmp_path):
    runs, urls = replicas["runs"], replicas["urls"]
    registry = MlflowClient(runs["env"]["MLFLOWSERVER_URL"])
    before = {url: _served(url) for url in urls}
    assert all(before.values()), "runs after the follow test"

    # A new version with its own copy of the model, whose artifacts are then deleted from the artifact store.
    mlflow.set_tracking_uri(runs["env"]["MLFLOWSERVER_URL"])
    local = mlflow.artifacts.download_artifacts(f"models:/{NAME}/1", dst_path=str(tmp_path))
    experiment = registry.get_experiment_by_name(runs["env"]["MLFLOW_EXP_NAME"]).experiment_id
    with mlflow.start_run(experiment_id=experiment, run_name="to-be-broken") as run:
        mlflow.log_artifacts(local, "model")
    broken = mlflow.register_model(f"runs:/{run.info.run_id}/model", NAME).version
    s3 = boto3.client(
        "s3",
        endpoint_url=mlflow_server["s3_endpoint"],
        aws_access_key_id="testing-key",
        aws_secret_access_key="testing-secret-value",
        region_name="us-east-1",
    )
    listed = s3.list_objects_v2(Bucket=mlflow_server["bucket"], Prefix="mlartifacts/")
    doomed = [o["Key"] for o in listed.get("Contents", []) if f"/{run.info.run_id}/" in o["Key"]]
    assert doomed, "the copy's artifacts are in the bucket"
    s3.delete_objects(Bucket=mlflow_server["bucket"], Delete={"Objects": [{"Key": key} for key in doomed]})

    registry.set_registered_model_alias(NAME, "champion", str(broken))
    deadline = time.monotonic() + 2 * INTERVAL + 30
    while time.monotonic() < deadline and not all((_served(u) or {}).get("follow_error") for u in urls):
        time.sleep(0.2)
    for url in urls:
        served = _served(url)
        assert served["follow_error"] and served["version"] == before[url]["version"], served
        answer = requests.post(url + "/predict", json={"model": NAME, "texts": ["Great."]}, timeout=30)
        assert answer.status_code == 200 and answer.json()["run_id"] == before[url]["run_id"]
        assert "follow_failed" in [e["action"] for e in MLFlaskClient(url).logs(20)]
        page = requests.get(url + "/metrics", timeout=5).text
        assert 'outcome="follow_failed"' in page and "mlflask_follow_events_total{" in page
    registry.set_registered_model_alias(NAME, "champion", before[urls[0]]["version"])
    _wait_until_clear(urls)


def _wait_until_clear(urls: list[str]) -> None:
    deadline = time.monotonic() + 2 * INTERVAL + 30
    while time.monotonic() < deadline:
        if not any((_served(u) or {}).get("follow_error") for u in urls):
            return
        time.sleep(0.2)
    raise AssertionError("follow_error stayed after the alias came back")


def _champion_version(replicas) -> str:
    """The version @champion points at; run alone (make test-repeat), no earlier test has promoted one: do it."""
    client = MlflowClient(replicas["env"]["MLFLOWSERVER_URL"])
    try:
        return client.get_model_version_by_alias(NAME, "champion").version
    except MlflowException:
        run_id = replicas["runs"]["good"].run_id
        if not client.search_registered_models(f"name = '{NAME}'"):
            client.create_registered_model(NAME)
        version = client.create_model_version(NAME, f"runs:/{run_id}/model", run_id).version
        client.set_registered_model_alias(NAME, "champion", version)
        return str(version)


def test_an_empty_store_is_rebuilt_from_mlflask_deployments(replicas, tmp_path):
    """In process: a new MLFlask with an empty store serves MLFLASK_DEPLOYMENTS' alias by itself."""
    version = _champion_version(replicas)
    with mlflask_app(tmp_path / "fresh", replicas["env"]) as (client, _, store):
        assert not (store / "state.json").exists() or NAME not in (store / "state.json").read_text()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and client.get(f"/models/{NAME}").status_code != 200:
            time.sleep(0.2)
        rebuilt = client.get(f"/models/{NAME}").get_json()
        assert rebuilt.get("version") == version and rebuilt["model_uri"] == f"models:/{NAME}@champion"
        assert client.post("/predict", json={"model": NAME, "texts": ["Great."]}).status_code == 200
        assert "restore" in [e["action"] for e in client.get("/logs?limit=5").get_json()["logs"]]


@pytest.mark.parametrize(
    "uri",
    ["models:/x", "models:/../x/1", "runs:/abc/model", "s3://bucket/model", "models:/x/0", "models:/x@", "/tmp/x"],
)
def test_only_registry_references_are_model_sources(uri):
    with pytest.raises(Exception, match="model_uri must be"):
        ModelRef.parse(uri)


def test_post_models_takes_a_registry_reference(replicas):
    url = replicas["urls"][0]
    response = requests.post(url + "/models", json={"name": "pinned", "model_uri": f"models:/{NAME}/1"}, timeout=120)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["alias"] is None and body["version"] == "1" and body["registered_model"] == NAME
    card = requests.get(url + "/models/pinned", timeout=5).json()["card"]
    assert "WARNING: trained on SYNTHETIC data" in card
    for bad in ({"name": "x", "model_uri": "s3://evil/model"}, {"name": "x", "model_uri": "models:/nope@champion"}):
        answer = requests.post(url + "/models", json=bad, timeout=60)
        assert answer.status_code in (400, 404, 422) and "error" in answer.json(), answer.text


@pytest.mark.parametrize(
    "source, synthetic",
    [("sample seed=42", True), ("sample:1000 seed=42", True), ("csv:sample.csv", False), ("imdb", False)],
)
def test_the_card_flags_every_spelling_of_the_synthetic_source(source, synthetic):
    from mlplatform.registry.modelcard import SYNTHETIC_WARNING, model_card, model_tags
    from mlplatform.registry.runs import RunSummary

    run = RunSummary("r" * 32, "name", "1", None, None, {}, {"test_accuracy": 0.9}, 0, {"dataset_source": source})
    assert (SYNTHETIC_WARNING in model_card(run)) is synthetic
    assert model_tags(run)["synthetic"] == str(synthetic).lower()


def test_the_alias_moves_only_from_where_the_caller_saw_it(tmp_path):
    """Compare-and-set on the alias, and a champion whose run was deleted is still a champion (scored by version)."""
    from mlplatform.names import ModelRef
    from mlplatform.promotion.gate import PromotionGate
    from mlplatform.registry import Registry
    from mlplatform.registry.promotion import AliasMoved
    from mlplatform.settings import Settings

    settings = Settings.from_mapping({"MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/mlflow.db"})
    registry = Registry(settings)
    client = registry.client
    run = client.create_run(registry.ensure_experiment())
    client.create_registered_model("cas")
    versions = [
        client.create_model_version("cas", f"file://{tmp_path}/m{i}", run.info.run_id).version for i in range(3)
    ]
    client.set_registered_model_alias("cas", "champion", versions[2])  # someone promoted version 3 meanwhile
    with pytest.raises(AliasMoved, match="points at version 3, not 1"):
        registry.promote("cas", version=versions[1], alias="champion", expected=versions[0])
    assert client.get_model_version_by_alias("cas", "champion").version == versions[2], "nothing moved"
    moved = registry.promote("cas", version=versions[1], alias="champion", expected=versions[2])
    assert moved.alias_moved and client.get_model_version_by_alias("cas", "champion").version == versions[1]
    with pytest.raises(AliasMoved, match="points at version nothing, not 1"):
        registry.promote("cas", version=versions[0], alias="challenger", expected=versions[0])

    gone = client.create_model_version("cas", f"file://{tmp_path}/m3", "f" * 32).version  # its run no longer exists
    client.set_registered_model_alias("cas", "champion", gone)
    champion = PromotionGate(registry, None, settings)._champion(ModelRef("cas", alias="champion"))
    assert champion is not None and champion.version == str(gone) and champion.run.run_name == "(run deleted)"
