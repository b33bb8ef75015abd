"""Job 3 under `torchrun --nproc_per_node=2` (gloo on CPU) with the tiny test model and the default sqlite
store: one FINISHED run from rank 0 whose model loads and predicts, nothing from rank 1; a rank that raises
fails the launch and the run ends FAILED."""

import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mlplatform.data.dataprep import clean_raw, prepare_raw
from mlplatform.data.sources import SourceOptions
from mlplatform.data.storage import open_storage
from mlplatform.settings import Settings
from tests.helpers.services import PLATFORM_VARS, env_without

pytestmark = pytest.mark.live  # torchrun starts two training processes

REPO = Path(__file__).resolve().parents[1]
EXPERIMENT = "ddp-tests"
FAIL_ON_RANK_1 = """
import os

if os.environ.get("RANK") == "1":
    import transformers

    original = transformers.Trainer.training_step
    calls = []

    def training_step(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("rank 1 broke on its second step (injected by the test)")
        return original(self, *args, **kwargs)

    transformers.Trainer.training_step = training_step
"""


@pytest.fixture
def launch_env(tmp_path, tiny_bert):
    env = {
        "LAKE_DIR": str(tmp_path / "lake"),
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path}/mlflow.db",  # the default kind of store
        "MLFLOW_DEFAULT_ARTIFACTORY_ROOT": (tmp_path / "artifacts").as_uri(),
        "MLFLOW_EXP_NAME": EXPERIMENT,
        "PRETRAINED_MODEL": str(tiny_bert),
        "EPOCHS": "1",
        "MAX_LENGTH": "32",
        "BATCH_SIZE": "8",
        "TRAIN_SAMPLES": "0",
        "TEST_SAMPLES": "0",
        "ONNX_EXPORT": "fp32",
        "LEARNING_RATE": "1e-4",
    }
    storage = open_storage(Settings.from_mapping(env))
    prepare_raw(storage, "sample:300", SourceOptions())
    clean_raw(storage)
    return env


def _torchrun(env: dict, tmp_path: Path, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    full = {**env_without(*PLATFORM_VARS), **env, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    if extra_path:
        full["PYTHONPATH"] = str(extra_path)
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "jobs.finetune",
    ]
    return subprocess.run(command, env=full, cwd=REPO, capture_output=True, text=True, timeout=600)


def _runs(env: dict):
    client = MlflowClient(env["MLFLOW_BACKEND_STORE_URI"])
    experiments = client.search_experiments()
    ours = [e for e in experiments if e.name == EXPERIMENT]
    return client, experiments, client.search_runs([ours[0].experiment_id]) if ours else []


def test_two_processes_make_one_finished_run_from_rank_0(launch_env, tmp_path):
    done = _torchrun(launch_env, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    client, experiments, runs = _runs(launch_env)
    assert {e.name for e in experiments} == {"Default", EXPERIMENT}, "rank 1 created no experiment"
    assert len(runs) == 1, "rank 1 created no run"
    run = runs[0]
    assert run.info.status == "FINISHED" and run.data.params["world_size"] == "2"
    assert "val_f1" in run.data.metrics and "test_accuracy" in run.data.metrics
    mlflow.set_tracking_uri(launch_env["MLFLOW_BACKEND_STORE_URI"])
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    answers = model.predict(pd.DataFrame({"text": ["A wonderful film.", "A dreadful film."]}))
    assert len(answers) == 2


def test_a_rank_that_raises_fails_the_launch_and_the_run(launch_env, tmp_path):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(FAIL_ON_RANK_1)
    done = _torchrun(launch_env, tmp_path, extra_path=hooks)
    assert done.returncode != 0
    assert "rank 1 broke on its second step" in done.stderr + done.stdout
    _, _, runs = _runs(launch_env)
    assert len(runs) == 1 and runs[0].info.status == "FAILED", [r.info.status for r in runs]


def test_dagster_launches_finetuned_model_through_torchrun_when_nproc_is_2(launch_env):
    import dagster as dg

    from mlplatform.orchestration import build_definitions

    defs = build_definitions(Settings.from_mapping(launch_env))
    result = defs.resolve_job_def("pipeline").execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        asset_selection=[dg.AssetKey("finetuned_model")],
        run_config={"ops": {"finetuned_model": {"config": {"nproc": 2}}}},
    )
    assert result.success
    metadata = result.asset_materializations_for_node("finetuned_model")[0].metadata
    client, _, runs = _runs(launch_env)
    assert [r.info.run_id for r in runs] == [metadata["run_id"].value]
    assert runs[0].data.params["world_size"] == "2" and runs[0].info.status == "FINISHED"
