"""Job 3's sweeps (issue #25) with the tiny test model: `python jobs/finetune.py --sweep N` makes one parent run
and one child run per trial, prunes a hopeless trial, records the best trial on the parent, resumes after a
kill with only the missing trials, and job 4's candidate search promotes a child run."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from optuna.trial import TrialState

from mlplatform.data import lake
from mlplatform.data.dataprep import clean_raw, prepare_raw
from mlplatform.data.sources import SourceOptions
from mlplatform.data.storage import open_storage
from mlplatform.registry import Registry
from mlplatform.settings import Settings
from mlplatform.training.config import TrainConfig
from mlplatform.training.sweep import load_space, study_name
from tests.helpers.services import PLATFORM_VARS, env_without

pytestmark = pytest.mark.live  # sweeps run job 3 as subprocesses, one killed on purpose

REPO = Path(__file__).resolve().parents[1]
SPACE = """
learning_rate: {low: 1.0e-5, high: 0.5, log: true}
batch_size: {choices: [16]}
epochs: {low: 1, high: 1}
"""
HOPELESS = {"learning_rate": 0.5, "batch_size": 16, "epochs": 1}  # AdamW at 0.5 wrecks the weights at once


@pytest.fixture
def sweep_env(tmp_path, sentiment_bert):
    env = {
        "LAKE_DIR": str(tmp_path / "lake"),
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/mlflow.db",
        "MLFLOW_DEFAULT_ARTIFACTORY_ROOT": (tmp_path / "artifacts").as_uri(),
        "MLFLOW_EXP_NAME": "sweep-tests",
        "SWEEP_STORAGE": f"sqlite:///{tmp_path}/optuna.db",
        "PRETRAINED_MODEL": str(sentiment_bert),
        "MAX_LENGTH": "32",
        "TRAIN_SAMPLES": "0",
        "TEST_SAMPLES": "0",
        "ONNX_EXPORT": "fp32",
        "DEPLOY_METRIC": "val_accuracy",
        "MODEL_NAME": "swept-movie",
    }
    storage = open_storage(Settings.from_mapping(env))
    prepare_raw(storage, "sample:300", SourceOptions())
    clean_raw(storage)
    (tmp_path / "space.yaml").write_text(SPACE)
    return env


def _command(tmp_path: Path, trials: int) -> list[str]:
    return [sys.executable, "jobs/finetune.py", "--sweep", str(trials), "--space", str(tmp_path / "space.yaml")]


def _full_env(env: dict) -> dict:
    return {**env_without(*PLATFORM_VARS), **env, "TQDM_DISABLE": "1"}


def _study(env: dict, tmp_path: Path) -> optuna.Study:
    """The study the sweep command will use (the same name it derives), created ahead of it."""
    settings = Settings.from_mapping(env)
    manifest = lake.read_manifest(open_storage(settings), "clean")
    name = study_name(
        settings, TrainConfig.of(settings), load_space(tmp_path / "space.yaml"), lake.manifest_digest(manifest)
    )
    return optuna.create_study(study_name=name, storage=env["SWEEP_STORAGE"], direction="maximize", load_if_exists=True)


def _children(client: MlflowClient, parent_id: str) -> list:
    experiment = client.get_run(parent_id).info.experiment_id
    return client.search_runs([experiment], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")


def test_a_sweep_of_four_has_one_parent_four_children_a_pruned_trial_and_the_best_on_the_parent(sweep_env, tmp_path):
    study = _study(sweep_env, tmp_path)
    study.enqueue_trial({"learning_rate": 1e-4, "batch_size": 16, "epochs": 1})  # a sane first trial
    study.enqueue_trial(HOPELESS)
    done = subprocess.run(
        _command(tmp_path, 4), env=_full_env(sweep_env), cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    client = MlflowClient(sweep_env["MLFLOW_BACKEND_STORE_URI"])
    experiment = client.get_experiment_by_name("sweep-tests").experiment_id
    parents = client.search_runs([experiment], filter_string="tags.`mlplatform.kind` = 'sweep'")
    assert len(parents) == 1
    parent = parents[0]
    children = _children(client, parent.info.run_id)
    assert len(children) == 4
    pruned = [c for c in children if c.data.tags.get("sweep.pruned") == "true"]
    assert pruned and all(c.info.status == "KILLED" for c in pruned), "the hopeless trial was pruned"
    assert any(float(c.data.params["learning_rate"]) == 0.5 for c in pruned)
    finished = [c for c in children if c.info.status == "FINISHED"]
    top = max(c.data.metrics["val_accuracy"] for c in finished)
    best = next(c for c in finished if c.info.run_id == parent.data.tags["sweep.best_run_id"])
    assert best.data.metrics["val_accuracy"] == top, "the parent names a trial with the best score (ties possible)"
    assert parent.data.metrics["best_val_accuracy"] == pytest.approx(best.data.metrics["val_accuracy"])
    assert float(parent.data.params["best_learning_rate"]) == pytest.approx(float(best.data.params["learning_rate"]))
    assert parent.data.tags["optuna.storage"] == sweep_env["SWEEP_STORAGE"]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert {"sweep/parallel_coordinates.png", "sweep/trials.csv"} <= artifacts
    # job 4's candidate search sees the children like any run; the best one is promoted
    registry = Registry(Settings.from_mapping(sweep_env))
    chosen = registry.best_run("val_accuracy")
    assert chosen.run_id in {c.info.run_id for c in finished if c.data.metrics["val_accuracy"] == top}
    promotion = registry.promote("swept-movie")
    assert promotion.run_id == chosen.run_id and promotion.version == "1"


def test_a_killed_sweep_resumes_with_only_the_missing_trials(sweep_env, tmp_path):
    study = _study(sweep_env, tmp_path)
    process = subprocess.Popen(
        _command(tmp_path, 4), env=_full_env(sweep_env), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        ended = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
        if len(ended) >= 2:
            break
        assert process.poll() is None, process.stderr.read().decode()[-3000:]
        time.sleep(0.3)
    process.send_signal(signal.SIGKILL)  # no chance to clean up: the third trial is left RUNNING
    process.wait(30)
    ended_before = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    assert ended_before in (2, 3)
    done = subprocess.run(
        _command(tmp_path, 4), env=_full_env(sweep_env), cwd=REPO, capture_output=True, text=True, timeout=900
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"running {4 - ended_before}" in done.stdout + done.stderr
    trials = study.get_trials(deepcopy=False)
    assert len([t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]) == 4
    assert [t.state for t in trials].count(TrialState.FAIL) <= 1, "only the killed trial failed"
    client = MlflowClient(sweep_env["MLFLOW_BACKEND_STORE_URI"])
    experiment = client.get_experiment_by_name("sweep-tests").experiment_id
    parents = client.search_runs([experiment], filter_string="tags.`mlplatform.kind` = 'sweep'")
    assert len(parents) == 1, "the rerun continued the same parent run"
    children = _children(client, parents[0].info.run_id)
    assert not [c for c in children if c.info.status == "RUNNING"], "the killed trial's run is closed"
