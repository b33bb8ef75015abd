"""The promotion gate (issue #23) against a real `mlflow server`, a live MLFlask and one lake: contenders are
compared on the lake's current test split, not on the val_f1 each logged on its own data."""

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from jobs import model_deployment
from mlplatform.data.dataprep import clean_raw, prepare_raw
from mlplatform.data.sources import SourceOptions
from mlplatform.data.sources.sample import generate_sample
from mlplatform.data.storage import open_storage
from mlplatform.registry import Registry
from mlplatform.serving.client import MLFlaskClient
from mlplatform.settings import Settings
from mlplatform.training.config import TrainConfig
from mlplatform.training.finetune import run_finetune

NAME = "gated"


def _ironic_reviews(path) -> str:
    """Reviews in another style: critics who praise what they hated. The words say one thing, the label the other."""
    sample = generate_sample(600, seed=7)
    frame = pd.concat([sample["train"], sample["test"]])
    pd.DataFrame({"text": frame["text"], "label": 1 - frame["label"]}).to_csv(path, index=False)
    return f"csv:{path}"


@pytest.fixture(scope="module")
def contest(mlflow_server, mlflask, tiny_bert, sentiment_bert, tmp_path_factory):
    """A champion trained on the ironic reviews (the lake's current data) and a challenger trained on `sample`,
    whose logged val_f1 (on its own easy split) is higher."""
    folder = tmp_path_factory.mktemp("gate")
    common = {"MLFLOWSERVER_URL": mlflow_server["url"], "MLFLOW_EXP_NAME": "gate-tests", "MLFLASK_URL": mlflask["url"]}
    synthetic = Settings.from_mapping({**common, "LAKE_DIR": str(folder / "sample-lake")})
    prepare_raw(open_storage(synthetic), "sample:1000", SourceOptions())
    clean_raw(open_storage(synthetic))
    train = dict(epochs=2, max_length=128, train_samples=0, test_samples=0)
    taught = TrainConfig(pretrained_model=str(sentiment_bert), learning_rate=3e-4, **{**train, "epochs": 4})
    challenger = run_finetune(synthetic, taught)
    env = {**common, "LAKE_DIR": str(folder / "lake")}
    settings = Settings.from_mapping(env)
    prepare_raw(open_storage(settings), _ironic_reviews(folder / "ironic.csv"), SourceOptions())
    clean_raw(open_storage(settings))
    taught_here = TrainConfig(pretrained_model=str(tiny_bert), learning_rate=5e-4, group_by_length=True, **train)
    champion = run_finetune(settings, taught_here)
    Registry(settings).promote(NAME, run_id=champion.run_id)  # promoted earlier, by hand: it fails job 5's checks
    return {"env": env, "champion": champion, "challenger": challenger}


def test_a_higher_val_f1_on_other_data_does_not_replace_the_champion(contest, monkeypatch, capsys):
    for key, value in contest["env"].items():
        monkeypatch.setenv(key, value)
    champion, challenger = contest["champion"], contest["challenger"]
    premise = {k: (challenger.metrics[k], champion.metrics[k]) for k in ("val_f1", "val_accuracy")}
    assert challenger.metrics["val_f1"] > champion.metrics["val_f1"], premise

    assert model_deployment.main(["--name", NAME]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line.split() for line in out.split("by f1:\n", 1)[1].splitlines()[2:4]}
    assert float(rows["champion"][4]) > float(rows["challenger"][4]), out
    assert "keep the champion" in out and "trained on synthetic data" in out

    registry = MlflowClient(contest["env"]["MLFLOWSERVER_URL"])
    assert registry.get_model_version_by_alias(NAME, "champion").run_id == champion.run_id
    (staged,) = registry.search_model_versions(f"name = '{NAME}' and run_id = '{challenger.run_id}'")
    assert staged.tags["gate.decision"] == "kept_champion"
    assert "challenger" not in registry.get_registered_model(NAME).aliases, "a refused challenger keeps no alias"
    assert float(staged.tags["gate.champion_score"]) > float(staged.tags["gate.score"])
    evaluation = registry.get_run(staged.tags["gate.evaluation_run"])
    assert evaluation.data.tags["dataset_digest"] == staged.tags["gate.dataset_digest"]
    assert {"gate_f1", "gate_accuracy", "gate_loss"} <= evaluation.data.metrics.keys()
    assert MLFlaskClient(contest["env"]["MLFLASK_URL"]).model(f"{NAME}-challenger") is None, "nothing was staged"


def test_force_still_runs_the_checks_and_a_failure_exits_non_zero(contest, monkeypatch, capsys):
    for key, value in contest["env"].items():
        monkeypatch.setenv(key, value)
    # forced past the score and data rules, the challenger meets the staging checks; the ironic champion stays
    code = model_deployment.main(["--name", NAME, "--run-id", contest["challenger"].run_id, "--force"])
    registry = MlflowClient(contest["env"]["MLFLOWSERVER_URL"])
    champion = registry.get_model_version_by_alias(NAME, "champion")
    if code == 0:  # the sample-trained model passed the checks: forced, it is promoted
        assert champion.run_id == contest["challenger"].run_id
        assert "promote the challenger" in capsys.readouterr().out
    else:
        assert code == 3 and champion.run_id == contest["champion"].run_id


def test_the_data_of_registered_versions_is_pinned_and_a_version_can_be_retrained_on_it(contest, monkeypatch):
    from mlplatform.data import lake
    from mlplatform.data.pins import prune

    settings = Settings.from_mapping(contest["env"])
    storage = open_storage(settings)
    registry = MlflowClient(contest["env"]["MLFLOWSERVER_URL"])
    # the first champion, trained on this lake (the forced test above may have moved the alias since)
    champion = registry.search_model_versions(f"name = '{NAME}' and run_id = '{contest['champion'].run_id}'")[0]
    trained_on = registry.get_run(champion.run_id).data.tags["dataset_generation"]
    pins = lake.pins(storage, "clean")
    assert f"{NAME}@v{champion.version}" in pins[trained_on]  # its training data
    assert f"{NAME}@v{champion.version}.eval" in pins[trained_on]  # and the rows the gate scored it on

    # clean/ moves on; the pinned generation still reproduces the champion's dataset
    prepare_raw(open_storage(settings), "sample:300", SourceOptions())
    clean_raw(open_storage(settings))
    assert lake.read_manifest(storage, "clean")["generation"] != trained_on
    again = run_finetune(
        settings.replace(dataset_generation=trained_on),
        TrainConfig(epochs=1, max_length=64, train_samples=0, test_samples=0, learning_rate=1e-4),
    )
    original = registry.get_run(champion.run_id).data.params["dataset_digest"]
    assert registry.get_run(again.run_id).data.params["dataset_digest"] == original

    challenger = registry.search_model_versions(f"name = '{NAME}' and run_id = '{contest['challenger'].run_id}'")[0]
    registry.delete_model_version(NAME, challenger.version)
    assert f"{NAME}@v{challenger.version}.eval" in prune(Registry(settings))
    assert all(f"{NAME}@v{challenger.version}" not in h for h in lake.pins(storage, "clean").get(trained_on, []))
