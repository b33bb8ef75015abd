"""Closing the loop (issue #24) against the real parts: an S3 lake served over HTTP by moto, a real `mlflow
server`, a live MLFlask logging its predictions, and Dagster in process. Batch scoring agrees with MLFlask;
monitoring finds no drift on texts like the training data and finds it on long texts in another language; the
sensor then asks for a retraining run tagged with the reason; MLDash shows the windows."""

import shutil
import time
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
import requests

from mlplatform.data import lake
from mlplatform.data.dataprep import clean_raw, prepare_incoming, prepare_raw
from mlplatform.data.sources import SourceOptions
from mlplatform.data.storage import open_storage
from mlplatform.monitoring import predlog
from mlplatform.monitoring.history import windows
from mlplatform.names import ModelRef
from mlplatform.orchestration import build_definitions
from mlplatform.orchestration.automation import retrain_on_drift_or_new_data
from mlplatform.orchestration.resources import from_settings
from mlplatform.registry import Registry
from mlplatform.settings import Settings
from mlplatform.training.config import TrainConfig
from mlplatform.training.finetune import run_finetune
from tests.helpers.s3 import lake_env, make_bucket
from tests.helpers.services import start_mlflask, stop_process

NAME = "watched-movie"
INCOMING_ROWS = 5000
GERMAN = "der die das und nicht ein eine ist war sehr gut schlecht langweilig spannend Handlung Schauspieler".split()


@pytest.fixture(scope="module")
def loop(s3_endpoint, mlflow_server, sentiment_bert, tmp_path_factory):
    """A champion trained on an S3 lake's sample data, incoming/ holding 5,000 rows to score, and MLFlask (as
    shipped: two workers) serving the champion and logging every prediction to the lake."""
    env = {
        **lake_env(s3_endpoint, make_bucket(s3_endpoint, "loop")),
        "MLFLOWSERVER_URL": mlflow_server["url"],
        "MLFLOW_EXP_NAME": "monitoring-tests",
        "MODEL_NAME": NAME,
        "MONITORING_MIN_ROWS": "50",
        "RETRAIN_MIN_NEW_ROWS": "1000",
        "ONNX_EXPORT": "fp32",
    }
    settings = Settings.from_mapping(env)
    storage = open_storage(settings)
    prepare_raw(storage, "sample:1000", SourceOptions())
    clean_raw(storage)
    config = TrainConfig(
        pretrained_model=str(sentiment_bert),
        learning_rate=1e-4,
        epochs=2,
        max_length=128,
        train_samples=0,
        test_samples=0,
    )
    champion = run_finetune(settings, config)
    Registry(settings).promote(NAME, run_id=champion.run_id)
    prepare_incoming(storage, f"sample:{INCOMING_ROWS}", SourceOptions(seed=7))
    folder = tmp_path_factory.mktemp("loop-mlflask")
    url, process, _, _ = start_mlflask(folder, {**env, "MLFLASK_LOG_FLUSH_SECONDS": "1"})
    try:
        answer = requests.post(url + "/models", json={"name": NAME, "model_uri": f"models:/{NAME}@champion"})
        assert answer.status_code == 200, answer.text
        yield {"env": env, "settings": settings, "storage": storage, "url": url, "run_id": champion.run_id}
    finally:
        stop_process(process)


def _materialize(settings: Settings, job: str, asset: str, config: dict):
    defs = build_definitions(settings)
    result = defs.resolve_job_def(job).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config={"ops": {asset: {"config": config}}}, raise_on_error=False
    )
    assert result.success, [e.message for e in result.all_events if e.is_failure]
    event = result.asset_materializations_for_node(asset)[0]
    return {key: value.value for key, value in event.metadata.items()}


def _predict(url: str, texts: list[str]) -> list[dict]:
    answers = []
    for start in range(0, len(texts), 64):
        with requests.Session() as session:
            answer = session.post(url + "/predict", json={"model": NAME, "texts": texts[start : start + 64]})
        assert answer.status_code == 200, answer.text
        answers += answer.json()["predictions"]
    return answers


def test_batch_predictions_publish_5000_rows_that_agree_with_mlflask(loop):
    metadata = _materialize(loop["settings"], "batch_scoring", "batch_predictions", {"stage": "incoming"})
    assert metadata["dagster/row_count"] == INCOMING_ROWS and metadata["model"] == f"models:/{NAME}@champion"
    storage = loop["storage"]
    manifest, frames = lake.read_dataset(storage, "predictions")  # checks every file's sha256 against the manifest
    assert manifest["generation"] == metadata["generation"] and manifest["input"]["stage"] == "incoming"
    scored = frames["predictions"]
    _, incoming = lake.read_dataset(storage, "incoming")
    assert list(scored["id"]) == list(incoming["rows"]["id"])
    assert set(scored["model"]) == {NAME} and set(scored["alias"]) == {"champion"}
    assert set(scored["run_id"]) == {loop["run_id"]} and set(scored["version"]) == {manifest["model_version"]}
    assert (scored["probability_positive"] + scored["probability_negative"]).between(0.999, 1.001).all()
    served = _predict(loop["url"], incoming["rows"]["text"].tolist())
    disagree = [
        (row.score, answer["score"])
        for row, answer in zip(scored.itertuples(), served, strict=True)
        if row.label != answer["label"]
    ]
    assert all(abs(score - 0.5) < 1e-3 for score, _ in disagree), f"{len(disagree)} labels differ: {disagree[:5]}"
    assert len(disagree) <= 5
    assert list(scored["true_label"]) == list(incoming["rows"]["label"]), "each row carries its true label"
    accuracy = (scored["label"].map({"negative": 0, "positive": 1}) == scored["true_label"]).mean()
    assert accuracy > 0.55, "the (tiny) champion was taught sentiment: far better than chance on 5,000 rows"


def _logged_since(storage, since: datetime, count: int) -> datetime:
    """Wait until `count` records after `since` are in the lake; returns the time just after the last."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = predlog.read(storage, predlog.LOG_STAGE, since, datetime.now(UTC) + timedelta(minutes=1))
        if len(rows) >= count:
            return rows["time"].max().to_pydatetime() + timedelta(milliseconds=1)
        time.sleep(0.5)
    raise AssertionError(f"only {len(rows)} of {count} records were logged")


def _window(loop, texts: list[str]) -> dict:
    """POST `texts`, then materialize model_monitoring over exactly the window that holds them."""
    start = datetime.now(UTC)
    _predict(loop["url"], texts)
    end = _logged_since(loop["storage"], start, len(texts))
    hours = (end - start).total_seconds() / 3600
    return _materialize(
        loop["settings"], "monitoring", "model_monitoring", {"end": end.isoformat(), "window_hours": hours}
    )


@pytest.fixture(scope="module")
def monitored(loop):
    """Two windows: texts like the training data, then long texts in another language."""
    _, incoming = lake.read_dataset(loop["storage"], "incoming")
    alike = _window(loop, incoming["rows"]["text"].sample(300, random_state=1).tolist())
    foreign = [" ".join(GERMAN[(i * 7 + j) % len(GERMAN)] for j in range(5 * 60)) + f" Nummer {i}." for i in range(300)]
    drifted = _window(loop, foreign)
    return {"alike": alike, "drifted": drifted}


def test_monitoring_finds_no_drift_on_texts_like_the_training_data(monitored):
    alike = monitored["alike"]
    assert alike["status"] == "ok", alike["alerts"]
    assert alike["drift_score"] < 0.25 and alike["rows_by_source"] == {"log": 300, "batch": 0}
    assert alike["length_ks_pvalue"] > 0.001
    assert "data:image/png;base64," in alike["plots"] and "/#/experiments/" in alike["report"]


def test_monitoring_finds_drift_on_long_texts_in_another_language(loop, monitored):
    drifted = monitored["drifted"]
    assert drifted["status"] == "drift"
    assert any(a.startswith("length_psi") for a in drifted["alerts"])
    assert any(a.startswith("vocabulary_psi") for a in drifted["alerts"])
    assert drifted["median_tokens"] > 3 * drifted["median_tokens_reference"]
    assert drifted["oov_rate"] > drifted["oov_rate_reference"] + 0.3
    registry = Registry(loop["settings"])
    found = windows(registry, "monitoring-tests", NAME)
    assert [w.status for w in found] == ["ok", "drift"]
    artifacts = {a.path for a in registry.client.list_artifacts(found[-1].run_id)}
    assert {"drift.png", "report.html"} <= artifacts
    champion = registry.resolve(ModelRef(NAME, alias="champion"))
    tags = registry.client.get_model_version(NAME, champion.version).tags
    assert tags["monitoring.status"] == "drift" and tags["monitoring.last_run"] == found[-1].run_id


def test_the_sensor_asks_for_retraining_once_per_reason_with_the_reason_in_its_tags(loop, monitored):
    resources = {"mlflow": from_settings(loop["settings"])["mlflow"]}

    def tick(cursor):
        with dg.build_sensor_context(cursor=cursor, resources=resources) as context:
            return retrain_on_drift_or_new_data(context), context.cursor

    first, cursor = tick(None)
    assert isinstance(first, dg.RunRequest), first
    assert first.tags["retrain_reason"] == "drift" and "drift_score" in first.tags["retrain_detail"]
    again, cursor = tick(cursor)
    assert isinstance(again, dg.SkipReason), "the same drifted window asks once"
    prepare_raw(loop["storage"], "sample:3000", SourceOptions())  # 1,600 train rows the champion never saw
    new_data, _ = tick(cursor)
    assert isinstance(new_data, dg.RunRequest), new_data
    assert new_data.tags["retrain_reason"] == "new_data"
    assert "1600 labelled raw/ train rows" in new_data.tags["retrain_detail"]


@pytest.mark.skipif(shutil.which("chromedriver") is None, reason="needs Debian's chromium-driver")
def test_mldash_shows_the_windows_the_threshold_and_the_alerts(browser, loop, monitored):
    from apps.mldash.app import create_app

    browser.start_server(create_app(Settings.from_mapping({**loop["env"], "MLFLASK_URL": loop["url"]})))
    browser.wait_for_element("#monitoring-graph .scatterlayer .trace", timeout=30)
    points = browser.driver.execute_script(
        "const g = document.querySelector('#monitoring-graph .js-plotly-plot');"
        "return [g.data[0].x.length, g.data[0].y, (g.layout.shapes || []).map(s => s.y0)];"
    )
    assert points[0] == 2, "one point per monitoring window"
    assert points[1][0] < 0.25 < points[1][1], "the first window under the threshold, the second above"
    assert 0.25 in points[2], "the threshold line"
    browser.wait_for_contains_text("#monitoring-alerts", "length_psi", timeout=10)
    assert "drift" in browser.text("#monitoring-alerts")
