"""The pipeline on Dagster: every asset materialized in process against the real parts (S3 over HTTP, a real
`mlflow server`, a live MLFlask), metadata read back, each asset check made to fail, job 3 relaunched alone with
another learning rate, the definitions validated by the CLI, and the webserver's GraphQL listing the assets."""

import subprocess
import sys
import time

import dagster as dg
import pandas as pd
import pytest
import requests
from mlflow.tracking import MlflowClient

from mlplatform.data import lake
from mlplatform.data.storage import open_storage
from mlplatform.orchestration import build_definitions
from mlplatform.orchestration.runner import prepare_home
from mlplatform.registry import Registry
from mlplatform.settings import Settings
from tests.helpers.services import PLATFORM_VARS, env_without, free_port, start_mlflask, stop_process, wait_for_http

ASSETS = [
    "raw_reviews",
    "clean_reviews",
    "finetuned_model",
    "challenger_evaluation",
    "champion_deployment",
    "served_predictions",
]


def _metadata(instance: dg.DagsterInstance, name: str) -> dict:
    event = instance.get_latest_materialization_event(dg.AssetKey(name))
    assert event is not None, f"{name} was not materialized"
    return {key: value.value for key, value in event.asset_materialization.metadata.items()}


def _run(defs: dg.Definitions, instance, selection: list[str], config: dict | None = None):
    job = defs.resolve_job_def("pipeline")
    return job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(name) for name in selection],
        run_config={"ops": {name: {"config": c} for name, c in (config or {}).items()}},
        raise_on_error=False,
    )


def _checks(result) -> dict[str, bool]:
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


@pytest.fixture
def platform(s3_env, mlflow_server, sentiment_bert, monkeypatch, tmp_path):
    """Env of an S3 lake, the tracking server and a live MLFlask, set in this process: assets run here."""
    env = {
        "MLFLOWSERVER_URL": mlflow_server["url"],
        "MLFLOW_EXP_NAME": f"dagster-{tmp_path.name[-20:]}",
        "DATA_SOURCE": "sample:400",
        "PRETRAINED_MODEL": str(sentiment_bert),
        "EPOCHS": "1",
        "MAX_LENGTH": "64",
        "TRAIN_SAMPLES": "0",
        "TEST_SAMPLES": "0",
        "ONNX_EXPORT": "fp32",
        "LEARNING_RATE": "1e-4",
        "DEPLOY_METRIC": "val_accuracy",
        "MODEL_NAME": "dagster-movie",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    url, process, _, _ = start_mlflask(tmp_path / "mlflask", {**s3_env, **env}, workers=1)
    monkeypatch.setenv("MLFLASK_URL", url)
    try:
        yield {"url": url, **env}
    finally:
        stop_process(process)


@pytest.mark.live
def test_every_asset_materializes_with_metadata_and_job_3_reruns_alone(platform):
    instance = dg.DagsterInstance.ephemeral()
    defs = build_definitions(Settings.load())
    result = _run(defs, instance, ASSETS)
    assert result.success
    assert _checks(result) == {
        "no_html": True,
        "label_balance": True,
        "no_train_test_overlap": True,
        "challenger_behaviour": True,
        "behaviour": True,
    }
    gate = _metadata(instance, "challenger_evaluation")
    assert gate["decision"] == "approved" and gate["champion_version"] == ""  # the first model: no champion yet

    settings = Settings.load()
    storage = open_storage(settings)
    for name, stage in (("raw_reviews", "raw"), ("clean_reviews", "clean")):
        meta = _metadata(instance, name)
        manifest = lake.read_manifest(storage, stage)
        assert meta["manifest_digest"] == lake.manifest_digest(manifest)
        assert meta["lake"] == f"{storage.location}/{stage}" and meta["lake"].startswith("s3://")
        assert meta["train_rows"] == manifest["files"]["train"]["rows"] == 320
        assert meta["train_labels"] == manifest["files"]["train"]["label_counts"]

    model = _metadata(instance, "finetuned_model")
    client = Registry(settings).client
    run = client.get_run(model["run_id"])
    assert run.info.status == "FINISHED" and run.data.params["learning_rate"] == "0.0001"
    assert model["run"].endswith(f"/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}")
    assert model["val_accuracy"] == pytest.approx(run.data.metrics["val_accuracy"])

    deployment = _metadata(instance, "champion_deployment")
    version = client.get_model_version_by_alias("dagster-movie", "champion")
    assert (deployment["version"], deployment["alias"]) == (int(version.version), "champion")
    assert deployment["mlflask"] == f"{platform['url']}/models/dagster-movie"
    served = requests.get(deployment["mlflask"], timeout=10).json()
    assert served["version"] == version.version and served["run_id"] == model["run_id"]

    predictions = _metadata(instance, "served_predictions")["predictions"]
    assert [row.data["label"] for row in predictions.records][0] == "positive"  # "Very good movie!"

    # The "rerun job 3 with other hyperparameters and compare" loop: finetuned_model alone, another learning rate.
    again = _run(defs, instance, ["finetuned_model"], {"finetuned_model": {"learning_rate": 3e-5}})
    assert again.success
    runs = client.search_runs([run.info.experiment_id])
    assert sorted(r.data.params["learning_rate"] for r in runs) == ["0.0001", "3e-05"]
    assert _metadata(instance, "finetuned_model")["run_id"] != model["run_id"]
    assert client.get_model_version_by_alias("dagster-movie", "champion").version == version.version  # untouched


def _publish(storage, stage: str, train: pd.DataFrame, test: pd.DataFrame) -> None:
    lake.publish(storage, stage, {"train": train, "test": test}, source="crafted")


def _frame(texts: list[str], labels: list[int], prefix: str) -> pd.DataFrame:
    return pd.DataFrame({"id": [f"{prefix}{i}" for i in range(len(texts))], "text": texts, "label": labels})


def test_each_data_check_fails_on_bad_data_and_fails_the_run(s3_env, monkeypatch):
    storage = open_storage(Settings.load())
    defs = build_definitions(Settings.load())
    checks_only = dict(
        assets=[*defs.assets, *defs.asset_checks],
        selection=dg.AssetSelection.checks_for_assets("clean_reviews"),
        resources=defs.resources,
        raise_on_error=False,
    )
    good = [f"review number {i} is fine" for i in range(20)]
    _publish(storage, "clean", _frame(good, [0, 1] * 10, "a"), _frame(good[:4], [0, 1] * 2, "b"))
    result = dg.materialize(**checks_only, instance=dg.DagsterInstance.ephemeral())
    assert _checks(result) == {"no_html": True, "label_balance": True, "no_train_test_overlap": False}

    html = [f"a <b>bold</b> review {i}" for i in range(10)] + [f"plain review {i}" for i in range(10)]
    _publish(storage, "clean", _frame(html, [0, 1] * 10, "a"), _frame(["another one", "and one more"], [0, 1], "b"))
    result = dg.materialize(**checks_only, instance=dg.DagsterInstance.ephemeral())
    assert _checks(result) == {"no_html": False, "label_balance": True, "no_train_test_overlap": True}
    assert not result.success  # blocking: a failed check fails the run

    # Through the real graph: a raw/ with 9 positive reviews in 10; cleaning keeps it, the check stops the run.
    lopsided = [f"an honest review, take {i}" for i in range(20)]
    _publish(storage, "raw", _frame(lopsided, [1] * 18 + [0] * 2, "a"), _frame(["a", "b", "c"], [1, 1, 0], "b"))
    instance = dg.DagsterInstance.ephemeral()
    result = _run(defs, instance, ["clean_reviews"])
    assert not result.success
    assert _checks(result) == {"no_html": True, "label_balance": False, "no_train_test_overlap": True}
    evaluation = next(e for e in result.get_asset_check_evaluations() if e.check_name == "label_balance")
    assert evaluation.metadata["smallest_share"].value == pytest.approx(0.1)


def test_a_challenger_that_fails_the_checks_stops_the_run_before_the_alias_moves(mlflask, monkeypatch):
    """The untaught run of the serving fixtures as the challenger: job 5's checks fail on its staging name, the
    UI gets the verdicts, the run fails, and champion_deployment never runs: no alias moved."""
    for name, value in {**mlflask["runs"]["env"], "MLFLASK_URL": mlflask["url"]}.items():
        monkeypatch.setenv(name, value)
    bad = mlflask["runs"]["other"].run_id
    instance = dg.DagsterInstance.ephemeral()
    result = _run(
        build_definitions(Settings.load()),
        instance,
        ["challenger_evaluation", "champion_deployment"],
        {"challenger_evaluation": {"run_id": bad, "model_name": "dagster-bad"}},
    )
    assert not result.success
    evaluation = result.get_asset_check_evaluations()[0]
    assert (evaluation.check_name, evaluation.passed) == ("challenger_behaviour", False)
    assert evaluation.metadata["failed"].value > 0
    assert _metadata(instance, "challenger_evaluation")["decision"] == "failed_checks"
    assert instance.get_latest_materialization_event(dg.AssetKey("champion_deployment")) is None
    registry = MlflowClient(mlflask["runs"]["env"]["MLFLOWSERVER_URL"])
    aliases = registry.get_registered_model("dagster-bad").aliases
    assert "champion" not in aliases and "challenger" not in aliases, "a failed challenger keeps no alias"
    (failed,) = registry.search_model_versions(f"name = 'dagster-bad' and run_id = '{bad}'")
    assert failed.tags["gate.decision"] == "failed_checks"


def test_dagster_cli_validates_the_definitions(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m", "mlplatform.orchestration"],
        env={**env_without(*PLATFORM_VARS), "DAGSTER_HOME": str(prepare_home(tmp_path))},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Validation successful for code location mlplatform.orchestration" in out.stdout + out.stderr


def test_the_webserver_lists_the_assets_checks_schedule_and_sensor(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dagster_webserver",
            "-m",
            "mlplatform.orchestration",
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
        ],
        env={
            **env_without(*PLATFORM_VARS),
            "DAGSTER_HOME": str(prepare_home(tmp_path)),
            "LAKE_DIR": str(tmp_path / "lake"),
        },
        stdout=open(tmp_path / "webserver.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{url}/server_info", process, timeout=120)
        query = """{
          assetNodes {
            assetKey { path } dependencyKeys { path }
            assetChecksOrError { ... on AssetChecks { checks { name } } }
          }
          repositoriesOrError { ... on RepositoryConnection { nodes {
            schedules { name cronSchedule scheduleState { status } } sensors { name sensorState { status } }
          } } }
        }"""
        for _ in range(30):  # the code location loads in the background
            answer = requests.post(f"{url}/graphql", json={"query": query}, timeout=30).json()
            assert "errors" not in answer, answer["errors"]
            data = answer["data"]
            if data["assetNodes"]:
                break
            time.sleep(1)
        nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
        assert sorted(nodes) == sorted([*ASSETS, "batch_predictions", "model_monitoring"])
        assert [d["path"] for d in nodes["champion_deployment"]["dependencyKeys"]] == [["challenger_evaluation"]]
        checks = {c["name"] for n in nodes.values() for c in n["assetChecksOrError"].get("checks", [])}
        assert checks == {"no_html", "label_balance", "no_train_test_overlap", "challenger_behaviour", "behaviour"}
        repository = data["repositoriesOrError"]["nodes"][0]
        schedules = {s["name"]: (s["cronSchedule"], s["scheduleState"]["status"]) for s in repository["schedules"]}
        expected = {"weekly_retraining": ("0 3 * * 1", "STOPPED"), "daily_monitoring": ("0 6 * * *", "STOPPED")}
        assert schedules == expected
        sensors = {s["name"]: s["sensorState"]["status"] for s in repository["sensors"]}
        assert sensors == {"raw_manifest_changed": "STOPPED", "retrain_on_drift_or_new_data": "STOPPED"}
    finally:
        stop_process(process)


def test_the_sensor_starts_cleaning_once_per_new_raw_manifest(tmp_path, monkeypatch):
    from mlplatform.orchestration.automation import raw_manifest_changed
    from mlplatform.orchestration.resources import LakeResource

    monkeypatch.setenv("LAKE_DIR", str(tmp_path / "lake"))
    storage = open_storage(Settings.load())

    def tick(cursor):
        context = dg.build_sensor_context(cursor=cursor, resources={"lake": LakeResource()})
        return raw_manifest_changed(context), context.cursor

    result, cursor = tick(None)
    assert isinstance(result, dg.SkipReason) and "holds nothing" in result.skip_message
    _publish(storage, "raw", _frame(["a", "b"], [0, 1], "a"), _frame(["c", "d"], [0, 1], "b"))
    request, cursor = tick(None)
    assert isinstance(request, dg.RunRequest) and request.run_key == cursor
    assert cursor == lake.manifest_digest(lake.read_manifest(storage, "raw"))
    again, _ = tick(cursor)
    assert isinstance(again, dg.SkipReason), "the same manifest starts nothing"
    _publish(storage, "raw", _frame(["e", "f"], [0, 1], "a"), _frame(["g", "h"], [0, 1], "b"))
    newer, newer_cursor = tick(cursor)
    assert isinstance(newer, dg.RunRequest) and newer_cursor != cursor
    assert raw_manifest_changed.job_name == "clean_on_new_raw"
    assert raw_manifest_changed.default_status == dg.DefaultSensorStatus.STOPPED


@pytest.mark.parametrize(
    "config, refused",
    [
        ({"source": "csv:/etc/passwd"}, "LAUNCHPAD_DATA_ROOTS"),
        ({"source": "csv:data/../../etc/passwd"}, "LAUNCHPAD_DATA_ROOTS"),
        ({"source": "csv:http://minio:9000/lake/secret.csv"}, "LAUNCHPAD_URL_HOSTS"),
        ({"imdb_url": "http://169.254.169.254/latest/meta-data"}, "LAUNCHPAD_URL_HOSTS"),
    ],
)
def test_launchpad_sources_stay_inside_the_allowed_folders_and_hosts(config, refused, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LAKE_DIR", str(tmp_path / "lake"))
    defs = build_definitions(Settings.load())
    result = _run(defs, dg.DagsterInstance.ephemeral(), ["raw_reviews"], {"raw_reviews": config})
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert refused in message and "root:" not in message
    assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").rglob("*.parquet"))
