"""MLDash in real headless Chromium against a live MLFlask and the real tracking server."""

import os
import shutil
import time
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from apps.mldash import callbacks
from apps.mldash.app import create_app
from apps.mldash.backend import Backend
from mlplatform.settings import Settings
from tests.conftest import free_port

pytestmark = pytest.mark.skipif(shutil.which("chromedriver") is None, reason="needs Debian's chromium-driver")
FOUR_LINES = "Very good movie!\nA dreadful, boring film.\nThe plot was brilliant.\nA waste of time, awful."


@pytest.fixture
def shots(tmp_path_factory) -> Path:
    """Screenshots of the main states, kept as test artifacts (MLDASH_SCREENSHOTS overrides the folder)."""
    folder = Path(os.environ.get("MLDASH_SCREENSHOTS") or tmp_path_factory.mktemp("mldash-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _settings(mlflask, **overrides) -> Settings:
    return Settings.from_env({**mlflask["runs"]["env"], "MLFLASK_URL": mlflask["url"], **overrides})


def _wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _click_radio(browser, value):
    browser.find_element(f"#deployed-models input[value='{value}']").click()


def test_full_flow_in_the_browser(browser, mlflask, shots):
    runs = mlflask["runs"]
    browser.start_server(create_app(_settings(mlflask)))
    browser.wait_for_text_to_equal("#metric-select-value", "val_f1", timeout=30)
    browser.select_dcc_dropdown("#metric-select", value="val_accuracy")
    browser.wait_for_contains_text("#best-run", runs["good"].run_id, timeout=30)
    browser.wait_for_contains_text("#best-metric", f"val_accuracy = {runs['good'].metrics['val_accuracy']:.4f}")
    run_name = MlflowClient(runs["env"]["MLFLOWSERVER_URL"]).get_run(runs["good"].run_id).info.run_name
    assert browser.find_element("#model-name").get_attribute("value") == callbacks.suggested_name(run_name)
    browser.screenshot(shots / "1-best-run.png")

    name_box = browser.find_element("#model-name")
    browser.clear_input(name_box)
    name_box.send_keys("bad name!")
    browser.find_element("#deploy-button").click()
    browser.wait_for_contains_text("#model-name-error", "Invalid name")
    browser.clear_input(name_box)
    name_box.send_keys("dash-movie")
    browser.find_element("#deploy-button").click()
    browser.wait_for_contains_text("#deploy-status", "Deployed dash-movie", timeout=60)
    assert browser.find_element("#model-name-error").text == ""
    registered = MlflowClient(runs["env"]["MLFLOWSERVER_URL"]).get_model_version_by_alias("dash-movie", "champion")
    assert registered.run_id == runs["good"].run_id, "Deploy promotes through the registry, as job 4 does"
    assert "models:/dash-movie@champion = version 1" in browser.text("#deploy-status")

    browser.find_element("#refresh-button").click()
    browser.wait_for_contains_text("#deployed-models", "dash-movie", timeout=30)
    _click_radio(browser, "dash-movie")
    browser.wait_for_contains_text("#model-card", runs["good"].run_id, timeout=30)
    assert "dash-movie version 1@champion" in browser.text("#model-card")
    assert "WARNING: trained on SYNTHETIC data" in browser.text("#model-card-markdown")
    link = browser.find_element("#model-card a").get_attribute("href")
    assert link.endswith(f"/runs/{runs['good'].run_id}")

    browser.find_element("#input-text").send_keys(FOUR_LINES)
    browser.find_element("#predict-button").click()
    browser.wait_for_element("#predictions", timeout=30)
    assert browser.find_element("#metric-select-value").text == "val_accuracy", "Refresh kept the chosen metric"
    items = browser.find_elements("#predictions li")
    assert len(items) == 4
    assert all(item.text.split()[0] in ("positive", "negative") for item in items)
    assert "negative" in items[1].text.split()[0] and "positive" in items[2].text.split()[0]
    browser.wait_for_element("#result-graph .main-svg", timeout=30)
    browser.screenshot(shots / "2-prediction.png")

    browser.find_element("#logs-button").click()
    browser.wait_for_contains_text("#logs", "deploy", timeout=30)
    assert "dash-movie" in browser.find_element("#logs").text

    browser.find_element("#remove-button").click()
    browser.wait_for_contains_text("#deployed-status", "Removed dash-movie", timeout=30)
    browser.find_element("#refresh-button").click()
    _wait_until(lambda: not browser.find_elements("#deployed-models input[value='dash-movie']"))
    assert "dash-movie" not in [m["name"] for m in requests.get(mlflask["url"] + "/models", timeout=5).json()["models"]]
    browser.screenshot(shots / "3-removed.png")
    assert browser.get_logs() == [], "no errors in the browser console"


def test_five_lines_and_mlflask_down_are_shown_in_the_page(browser, mlflask, shots):
    requests.post(
        mlflask["url"] + "/models", json={"name": "five", "run_id": mlflask["runs"]["good"].run_id}, timeout=120
    ).raise_for_status()
    browser.start_server(create_app(_settings(mlflask)))
    browser.find_element("#refresh-button").click()
    browser.wait_for_contains_text("#deployed-models", "five", timeout=30)
    _click_radio(browser, "five")
    browser.find_element("#input-text").send_keys(FOUR_LINES + "\nA fifth line.")
    browser.find_element("#predict-button").click()
    browser.wait_for_contains_text("#result", "Up to 4 sentences", timeout=30)
    assert "Nothing was sent" in browser.find_element("#result").text
    browser.screenshot(shots / "4-five-lines.png")


def test_mlflask_down_and_mlflow_unreachable(browser, mlflask, shots):
    dead = f"http://127.0.0.1:{free_port()}"
    browser.start_server(create_app(_settings(mlflask, MLFLASK_URL=dead, MLFLOWSERVER_URL=dead)))
    browser.wait_for_contains_text("#metric-status", "MLflow", timeout=60)
    browser.wait_for_contains_text("#deployed-status", "MLFlask is unreachable", timeout=60)
    browser.screenshot(shots / "5-services-down.png")
    assert browser.find_element("h1").text.startswith("MLDash")


class TestCallbacksDirectly:
    """The plain functions behind the callbacks, with untrusted input as /_dash-update-component could send."""

    def test_no_runs_yet(self, mlflask):
        backend = Backend.from_settings(_settings(mlflask, MLFLOW_EXP_NAME="empty-experiment"))
        options, value, status = callbacks.metric_options(backend)
        assert options == [] and value is None and "No finished runs yet" in status

    @pytest.mark.parametrize("name", ["../etc", "", None, 42, "a" * 65, "..", "bad name"])
    def test_deploy_rejects_bad_names_without_sending(self, mlflask, name):
        backend = Backend.from_settings(_settings(mlflask))
        status, error = callbacks.deploy(backend, name, {"run_id": mlflask["runs"]["good"].run_id, "metric": "x"})
        assert status == "" and "Invalid name" in error

    @pytest.mark.parametrize("store", [None, {}, {"run_id": "s3://evil/model"}, {"run_id": "../x"}, "text"])
    def test_deploy_rejects_forged_run_ids(self, mlflask, store):
        status, error = callbacks.deploy(Backend.from_settings(_settings(mlflask)), "fine-name", store)
        assert "Choose a metric first" in status and error == ""

    @pytest.mark.parametrize(
        "model, text, message",
        [
            (None, "hi", "Select a deployed model"),
            ("../x", "hi", "Select a deployed model"),
            ("ghost", "hi", "Prediction failed: MLFlask 404"),
            ("ghost", "", "Type at least one sentence"),
            ("ghost", ["not", "text"], "Type at least one sentence"),
            ("ghost", "a\nb\nc\nd\ne", "Up to 4 sentences"),
        ],
    )
    def test_predict_validates_untrusted_input(self, mlflask, model, text, message):
        result, _, _ = callbacks.predict(Backend.from_settings(_settings(mlflask)), model, text)
        assert message in str(result)

    def test_remove_needs_a_valid_selection(self, mlflask):
        _, _, status = callbacks.deployed_list(Backend.from_settings(_settings(mlflask)), remove="")
        assert "Select a deployed model" in status
