"""MLDash in real headless Chromium against a live MLFlask and the real tracking server, at three widths."""

import os
import shutil
import time
from pathlib import Path

import pytest
import requests
from mlflow.tracking import MlflowClient

from apps.mldash import views
from apps.mldash.app import create_app
from apps.mldash.backend import Backend
from mlplatform.promotion.serve import promote_and_serve
from mlplatform.registry import Registry
from mlplatform.settings import Settings
from tests.helpers.services import free_port

pytestmark = pytest.mark.skipif(shutil.which("chromedriver") is None, reason="needs Debian's chromium-driver")
FOUR_LINES = "Very good movie!\nA dreadful, boring film.\nThe plot was brilliant.\nA waste of time, awful."


@pytest.fixture
def shots(tmp_path_factory) -> Path:
    """Screenshots of the main states, kept as test artifacts (MLDASH_SCREENSHOTS overrides the folder)."""
    folder = Path(os.environ.get("MLDASH_SCREENSHOTS") or tmp_path_factory.mktemp("mldash-screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _settings(mlflask, **overrides) -> Settings:
    return Settings.from_mapping({**mlflask["runs"]["env"], "MLFLASK_URL": mlflask["url"], **overrides})


def _wait_until(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.2)


def _no_sideways_scroll(browser) -> None:
    widths = browser.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths[0] <= widths[1], f"the page scrolls sideways: scrollWidth {widths[0]} > innerWidth {widths[1]}"


def _run_rows(browser) -> list:
    """The runs table's data rows, as shown (the header and filter rows have no radio button)."""
    return browser.find_elements("#runs-table tbody tr:has(input[type='radio'])")


@pytest.mark.parametrize("width", [1400, 800])
def test_full_flow_in_the_browser(browser, mlflask, shots, width):
    runs = mlflask["runs"]
    mlflow = MlflowClient(runs["env"]["MLFLOWSERVER_URL"])
    name = f"dash-movie-{width}"
    browser.resize(width)
    browser.start_server(create_app(_settings(mlflask)))
    browser.wait_for_text_to_equal("#metric-select-value", "val_f1", timeout=30)
    browser.select_dcc_dropdown("#metric-select", value="val_accuracy")
    browser.wait_for_contains_text("#best-run", runs["good"].run_id, timeout=30)
    browser.wait_for_contains_text("#best-metric", f"val_accuracy = {runs['good'].metrics['val_accuracy']:.4f}")
    assert "best by val_accuracy" in browser.text("#best-run")
    run_name = mlflow.get_run(runs["good"].run_id).info.run_name
    assert browser.find_element("#model-name").get_attribute("value") == views.suggested_name(run_name)
    rows = _run_rows(browser)
    assert len(rows) == 2 and "★" in rows[0].text and "★" not in rows[1].text, "the best run first and starred"
    browser.wait_for_element("#run-comparison .main-svg .scatterlayer .trace", timeout=30)
    assert len(browser.find_elements("#run-comparison .scatterlayer .trace")) == 2, "both runs' curves, overlaid"
    _no_sideways_scroll(browser)
    browser.screenshot(shots / f"1-runs-{width}.png")

    name_box = browser.find_element("#model-name")
    browser.clear_input(name_box)
    name_box.send_keys("bad name!")
    browser.click("#deploy-button")
    browser.wait_for_contains_text("#model-name-error", "Invalid name")
    browser.clear_input(name_box)
    name_box.send_keys(name)
    browser.click("#deploy-button")
    browser.wait_for_contains_text("#deploy-status", f"Deployed {name}", timeout=90)
    assert browser.find_element("#model-name-error").text == ""
    assert browser.find_element("#model-name").get_attribute("value") == name, "the typed name stays"
    registered = mlflow.get_model_version_by_alias(name, "champion")
    assert registered.run_id == runs["good"].run_id, "Deploy promotes through the registry, as job 4 does"
    assert f"models:/{name}@champion = version 1" in browser.text("#deploy-status")
    browser.click("#deploy-status .btn-close")  # alerts can be dismissed
    _wait_until(lambda: not browser.find_elements("#deploy-status .alert"))

    browser.wait_for_contains_text("#deployed-models", name, timeout=30)  # the list refreshed itself
    browser.click(f"#deployed-models input[value='{name}']")
    browser.wait_for_contains_text("#model-card", runs["good"].run_id, timeout=30)
    card = browser.text("#model-card")
    assert "version 1" in card and "@champion" in card
    assert "WARNING: trained on SYNTHETIC data" in browser.text("#model-card-markdown")
    assert browser.find_element("#model-card a").get_attribute("href").endswith(f"/runs/{runs['good'].run_id}")
    browser.wait_for_element("#confusion-matrix", timeout=30)
    assert browser.driver.execute_script("return document.getElementById('confusion-matrix').naturalWidth") > 100

    browser.click("#refresh-button")
    browser.find_element("#input-text").send_keys(FOUR_LINES)
    browser.click("#predict-button")
    browser.wait_for_element("#predictions", timeout=30)
    assert browser.find_element("#metric-select-value").text == "val_accuracy", "Refresh kept the chosen metric"
    items = browser.find_elements("#predictions li")
    assert len(items) == 4 and len(browser.find_elements("#predictions .progress")) == 4
    labels = [item.text.split()[0] for item in items]
    assert labels[1] == "negative" and labels[2] == "positive" and set(labels) <= {"positive", "negative"}
    assert "A dreadful, boring film." in items[1].text
    _no_sideways_scroll(browser)
    browser.screenshot(shots / f"2-prediction-{width}.png")

    browser.click("#logs-button")
    browser.wait_for_element("#logs-table", timeout=30)
    log_rows = [row.text for row in browser.find_elements("#logs-table tbody tr")]
    assert any("deploy" in row and name in row for row in log_rows)
    times = [row.find_element("css selector", "td").text for row in browser.find_elements("#logs-table tbody tr")]
    assert times == sorted(times, reverse=True), "newest first"
    _no_sideways_scroll(browser)

    browser.click("#remove-button")
    browser.wait_for_contains_text("#deployed-status", f"Removed {name}", timeout=30)
    _wait_until(lambda: not browser.find_elements(f"#deployed-models input[value='{name}']"))
    assert name not in [m["name"] for m in requests.get(mlflask["url"] + "/models", timeout=5).json()["models"]]
    if width == 800:
        browser.resize(1024)
        time.sleep(0.5)
        _no_sideways_scroll(browser)
    assert browser.get_logs() == [], "no errors in the browser console"


def test_deploy_goes_through_the_gate_and_shows_the_comparison(browser, mlflask):
    """A run that is not the best: against a champion it scores lower on the shared set and is refused, with the
    comparison shown; under a new name it meets the behavioural checks on staging and fails them."""
    runs = mlflask["runs"]
    other = runs["other"].run_id
    settings = _settings(mlflask)
    promote_and_serve(
        Registry(settings), Backend.from_settings(settings).client, "dash-gate", run_id=runs["good"].run_id
    )
    mlflow = MlflowClient(runs["env"]["MLFLOWSERVER_URL"])
    browser.start_server(create_app(settings))
    browser.wait_for_contains_text("#best-run", runs["good"].run_id, timeout=30)
    browser.select_dcc_dropdown("#metric-select", value="val_accuracy")
    # the run was already shown for the first metric: wait for the table of the new one, or the click below lands
    # on a table that the pending answer then re-renders, with the best run selected again (a flake, #33)
    browser.wait_for_contains_text("#best-run", "best by val_accuracy", timeout=30)
    browser.wait_for_callbacks()
    second = _run_rows(browser)[1].find_element("css selector", "input[type='radio']")  # not the best
    browser.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", second)
    second.click()
    browser.wait_for_contains_text("#best-run", other, timeout=30)
    assert "not the best" in browser.text("#best-run")
    name_box = browser.find_element("#model-name")
    for name in ("dash-gate", "dash-other"):
        browser.clear_input(name_box)
        name_box.send_keys(name)
        browser.click("#deploy-button")
        browser.wait_for_contains_text("#deploy-status", "Not deployed", timeout=120)
        status = browser.text("#deploy-status")
        roles = [row.text.split()[0] for row in browser.find_elements("#gate-comparison tbody tr")]
        if name == "dash-gate":  # scored lower than the champion on the same rows: refused before any check
            assert "kept the champion" in status and sorted(roles) == ["challenger", "champion"], status
            assert mlflow.get_model_version_by_alias(name, "champion").run_id == runs["good"].run_id
        else:  # no champion to beat: staged, checked, refused
            assert "behavioural checks failed on the challenger" in status and roles == ["challenger"], status
            assert "champion" not in mlflow.get_registered_model(name).aliases
        browser.click("#deploy-status .btn-close")
        _wait_until(lambda: not browser.find_elements("#deploy-status .alert"))
    assert requests.get(mlflask["url"] + "/models/dash-other", timeout=5).status_code == 404
    requests.delete(mlflask["url"] + "/models/dash-gate", timeout=30)


def test_the_deploy_button_is_disabled_while_a_deploy_runs(browser, mlflask):
    browser.start_server(create_app(_settings(mlflask)))
    browser.wait_for_contains_text("#best-run", mlflask["runs"]["good"].run_id, timeout=30)
    name_box = browser.find_element("#model-name")
    browser.clear_input(name_box)
    name_box.send_keys("dash-busy")
    button = browser.find_element("#deploy-button")
    assert button.is_enabled()
    browser.click("#deploy-button")
    browser.wait_until(lambda: not button.is_enabled(), "the button was not disabled while deploying", timeout=5)
    button.click() if button.is_enabled() else None  # a second click on a disabled button does nothing
    browser.wait_for_contains_text("#deploy-status", "Deployed dash-busy", timeout=90)
    browser.wait_until(lambda: button.is_enabled(), "the button stayed disabled", timeout=10)
    logs = requests.get(mlflask["url"] + "/logs", timeout=5).json()["logs"]
    assert sum(1 for e in logs if e.get("model") == "dash-busy" and e["action"] == "deploy") == 1, "one deploy"
    requests.delete(mlflask["url"] + "/models/dash-busy", timeout=30)


def test_five_lines_are_refused_without_sending(browser, mlflask, shots):
    requests.post(
        mlflask["url"] + "/models", json={"name": "five", "run_id": mlflask["runs"]["good"].run_id}, timeout=120
    ).raise_for_status()
    browser.start_server(create_app(_settings(mlflask)))
    browser.click("#refresh-button")
    browser.wait_for_contains_text("#deployed-models", "five", timeout=30)
    browser.click("#deployed-models input[value='five']")
    browser.find_element("#input-text").send_keys(FOUR_LINES + "\n\n   \nA fifth line.")
    browser.click("#predict-button")
    browser.wait_for_contains_text("#result", "Up to 4 sentences", timeout=30)
    assert "you typed 5. Nothing was sent" in browser.find_element("#result").text, "blank lines are not counted"
    browser.screenshot(shots / "4-five-lines.png")


def test_mlflask_down_and_mlflow_unreachable(browser, mlflask, shots):
    dead = f"http://127.0.0.1:{free_port()}"
    browser.start_server(create_app(_settings(mlflask, MLFLASK_URL=dead, MLFLOWSERVER_URL=dead)))
    browser.wait_for_contains_text("#metric-status", "MLflow", timeout=60)
    browser.wait_for_contains_text("#deployed-status", "MLFlask is unreachable", timeout=60)
    browser.screenshot(shots / "5-services-down.png")
    assert browser.find_element("h1").text.startswith("MLDash")


def test_bootstrap_comes_from_the_package_not_a_cdn(mlflask):
    app = create_app(_settings(mlflask))
    client = app.server.test_client()
    page = client.get("/").get_data(as_text=True)
    assert "cdn" not in page.lower() and "/_mldash/bootstrap.min.css" in page
    css = client.get("/_mldash/bootstrap.min.css")
    assert css.status_code == 200 and css.mimetype == "text/css" and b"Bootstrap" in css.data[:400]


class TestCallbacksDirectly:
    """The plain functions behind the callbacks, with untrusted input as /_dash-update-component could send."""

    def test_no_runs_yet(self, mlflask):
        backend = Backend.from_settings(_settings(mlflask, MLFLOW_EXP_NAME="empty-experiment"))
        options, value, status = views.metric_options(backend)
        assert options == [] and value is None and "No finished runs yet" in str(status)

    @pytest.mark.parametrize("name", ["../etc", "", None, 42, "a" * 65, "..", "bad name"])
    def test_deploy_rejects_bad_names_without_sending(self, mlflask, name):
        backend = Backend.from_settings(_settings(mlflask))
        status, error, _ = views.deploy(backend, name, {"run_id": mlflask["runs"]["good"].run_id, "metric": "x"})
        assert status == "" and "Invalid name" in error

    @pytest.mark.parametrize("store", [None, {}, {"run_id": "s3://evil/model"}, {"run_id": "../x"}, "text"])
    def test_deploy_rejects_forged_run_ids(self, mlflask, store):
        status, error, _ = views.deploy(Backend.from_settings(_settings(mlflask)), "fine-name", store)
        assert "Select a run in the table first" in str(status) and error == ""

    def test_one_deploy_at_a_time(self, mlflask):
        backend = Backend.from_settings(_settings(mlflask))
        with backend.deploying:  # as if another tab's deploy were running
            status, _, event = views.deploy(backend, "fine-name", {"run_id": mlflask["runs"]["good"].run_id})
        assert "Another deploy is running" in str(status) and event is views.no_update

    @pytest.mark.parametrize(
        "rows, selected",
        [(None, [0]), ([{"id": "../x", "run": "x"}], [0]), ([{"id": "a" * 32}], [5]), ([{"id": "a" * 32}], "0")],
    )
    def test_forged_table_rows_select_nothing(self, rows, selected):
        assert views.selected_run(rows, selected, "val_f1")[1] is None

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
        assert message in str(views.predict(Backend.from_settings(_settings(mlflask)), model, text))

    def test_remove_needs_a_valid_selection(self, mlflask):
        _, _, status = views.deployed_list(Backend.from_settings(_settings(mlflask)), remove="")
        assert "Select a deployed model" in str(status)

    def test_a_typed_name_is_kept_and_a_suggestion_follows_the_run(self):
        store = {"run_id": "a" * 32, "run_name": "tiny lr 1e-4"}
        assert views.name_suggestion(store, None, None) == ("tiny-lr-1e-4", "tiny-lr-1e-4")
        assert views.name_suggestion(store, "tiny-lr-1e-5", "tiny-lr-1e-5") == ("tiny-lr-1e-4", "tiny-lr-1e-4")
        assert views.name_suggestion(store, "my-model", "tiny-lr-1e-5") == (views.no_update, views.no_update)
