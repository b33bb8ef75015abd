"""Job 3 end to end on the tiny BERT: what a user checks in the MLflow UI."""

import json
from pathlib import Path

import boto3
import mlflow
import pandas as pd
import pytest
import yaml
from mlflow.tracking import MlflowClient

from jobs import clean_data, data_preparation, finetune
from mlplatform.data import lake
from mlplatform.data.storage import open_storage
from mlplatform.serving.loader import load_servable
from mlplatform.settings import Settings

QUICK = [
    "--epochs",
    "2",
    "--batch-size",
    "16",
    "--max-length",
    "64",
    "--train-samples",
    "0",
    "--test-samples",
    "0",
    "--val-fraction",
    "0.2",
]


@pytest.fixture
def embedded(monkeypatch, tmp_path, tiny_bert):
    """Embedded defaults: local lake, sqlite MLflow; clean/ holds 200 sample reviews."""
    monkeypatch.setenv("LAKE_DIR", str(tmp_path / "lake"))
    monkeypatch.setenv("PRETRAINED_MODEL", str(tiny_bert))
    monkeypatch.setenv("MLFLOW_EXP_NAME", "tiny-embedded")
    # Absolute, because MLflow caches one store per URI string and every test has its own folder.
    monkeypatch.setenv("MLFLOW_BACKEND_STORE_URI", f"sqlite:///{tmp_path}/sqlite_directory/mlflow.db")
    assert data_preparation.main(["--source", "sample:200"]) == 0
    assert clean_data.main([]) == 0
    mlflow.set_tracking_uri(Settings.load().mlflow_backend_store_uri)
    return MlflowClient()


def _runs(client, name):
    experiment = client.get_experiment_by_name(name)
    return (
        []
        if experiment is None
        else client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"])
    )


def test_run_logs_params_metrics_plots_and_a_model_that_predicts_raw_text(embedded, tiny_bert):
    assert finetune.main([*QUICK, "--learning-rate", "1e-3"]) == 0
    (run,) = _runs(embedded, "tiny-embedded")
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "tiny-bert0-lr0.001-ep2-bs16-len64"
    params = run.data.params
    assert params["learning_rate"] == "0.001" and params["epochs"] == "2" and params["max_length"] == "64"
    assert params["pretrained_model"] == str(tiny_bert)
    assert (params["train_size"], params["val_size"], params["test_size"]) == ("128", "32", "40")
    assert params["dataset_location"].endswith("/imdb/clean")
    storage = open_storage(Settings.load())
    assert params["dataset_digest"] == lake.manifest_digest(lake.read_manifest(storage, "clean"))
    assert run.inputs.dataset_inputs, "the dataset is logged with mlflow.log_input"
    assert len(run.data.tags["git_commit"]) == 40
    assert not any("secret" in key.lower() for key in params)

    assert params["inference_max_length"] == "256" and params["evals_per_epoch"] == "2"
    for name in ("val_loss", "val_accuracy", "val_f1"):
        steps = [m.step for m in embedded.get_metric_history(run.info.run_id, name)]
        assert steps == [4, 8, 12, 16], "EPOCHS x EVALS_PER_EPOCH points (8 steps per epoch)"
    epochs = [m.value for m in embedded.get_metric_history(run.info.run_id, "epoch")]
    assert epochs[1] == pytest.approx(1.0) and epochs[-1] == pytest.approx(2.0), "epochs marked on the step axis"
    train_steps = [m.step for m in embedded.get_metric_history(run.info.run_id, "train_loss")]
    assert len(train_steps) >= 10 and train_steps == sorted(train_steps)
    for name in ("test_accuracy", "test_f1"):
        assert 0.0 <= run.data.metrics[name] <= 1.0

    plots = {a.path for a in embedded.list_artifacts(run.info.run_id, "plots")}
    assert plots == {
        "plots/learning_curve.png",
        "plots/confusion_matrix.png",
        "plots/roc_curve.png",
        "plots/pr_curve.png",
        "plots/accuracy_by_inference_length.png",
    }
    for name in ("negative", "positive"):
        for kind in ("precision", "recall", "f1"):
            assert 0.0 <= run.data.metrics[f"test_{name}_{kind}"] <= 1.0
    assert 0.0 <= run.data.metrics["test_roc_auc"] <= 1.0 and 0.0 <= run.data.metrics["test_pr_auc"] <= 1.0
    folder = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/evaluation"))
    mistakes = pd.read_csv(folder / "confident_mistakes.csv")
    assert list(mistakes.columns) == ["text", "label", "prediction", "score"] and len(mistakes) <= 20
    assert (mistakes["label"] != mistakes["prediction"]).all()
    assert mistakes["score"].is_monotonic_decreasing
    by_length = pd.read_csv(folder / "accuracy_by_inference_length.csv")
    assert by_length["inference_max_length"].tolist() == [64, 128, 256], "capped at the tiny model's 256 positions"
    assert by_length["test_accuracy"].between(0, 1).all()
    checkpoint = {a.path for a in embedded.list_artifacts(run.info.run_id, "checkpoint")}
    assert {"checkpoint/config.json", "checkpoint/model.safetensors", "checkpoint/tokenizer.json"} <= checkpoint
    local = Path(mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/model"))
    flavors = yaml.safe_load((local / "MLmodel").read_text())["flavors"]
    assert set(flavors) == {"python_function"}, "the registered model is the servable pyfunc, not torch"
    requirements = (local / "requirements.txt").read_text()
    assert "onnxruntime==" in requirements and "tokenizers==" in requirements and "torch" not in requirements
    servable = local / "artifacts" / "servable"
    assert {"model.onnx", "model-int8.onnx", "tokenizer.json", "servable.json"} <= {p.name for p in servable.iterdir()}
    check = json.loads((servable / "servable.json").read_text())["check"]
    assert check["fp32"]["passed"] and check["fp32"]["texts"] == int(params["test_size"])
    assert run.data.metrics["onnx_fp32_agreement"] == check["fp32"]["agreement"]
    split = check["int8"]  # ONNX_EXPORT=int8 (the default): int8 checked on the whole test split
    assert split["texts"] == int(params["test_size"])
    assert split["passed"] == (
        split["agreement"] >= 0.99 and split["accuracy_loss"] <= 0.01 and split["batch_invariance"] <= 1e-4
    )
    assert run.data.tags["servable"] == ("onnx int8" if split["passed"] else "onnx fp32")

    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    predictions = model.predict(pd.DataFrame({"text": ["A wonderful film.", "Dull and boring. " * 200]}))
    assert list(predictions.columns) == ["label", "score", "probability_negative", "probability_positive"]
    assert set(predictions["label"]) <= {"negative", "positive"}
    assert len(predictions) == 2 and predictions["score"].between(0, 1).all()


def test_the_servable_predicts_at_the_inference_length_not_the_training_one(embedded, tmp_path):
    args = [*QUICK, "--max-length", "16", "--inference-max-length", "48", "--learning-rate", "1e-3"]
    assert finetune.main(args) == 0
    (run,) = _runs(embedded, "tiny-embedded")
    assert run.data.params["max_length"] == "16" and run.data.params["inference_max_length_used"] == "48"
    served = load_servable(f"runs:/{run.info.run_id}/model", Settings.load())
    assert served.max_length == 48, "the servable truncates at the inference length"
    texts = ["good " * 10 + "terrible " * 30, "terrible " * 10 + "good " * 30]
    assert served.count_tokens(texts) == [42, 42], "counted before truncation"
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model").predict(pd.DataFrame({"text": texts}))
    ours = served.predict(texts)
    assert list(pyfunc["label"]) == [p["label"] for p in ours]
    assert list(pyfunc["score"]) == pytest.approx([p["score"] for p in ours], abs=1e-6)


def test_two_learning_rates_give_two_comparable_runs(embedded):
    assert finetune.main([*QUICK, "--epochs", "1", "--learning-rate", "1e-4"]) == 0
    assert finetune.main([*QUICK, "--epochs", "1", "--learning-rate", "3e-3"]) == 0
    runs = _runs(embedded, "tiny-embedded")
    assert [r.data.params["learning_rate"] for r in runs] == ["0.0001", "0.003"]
    assert all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        assert {"val_f1", "val_accuracy", "val_loss", "test_f1", "test_accuracy", "train_loss"} <= set(run.data.metrics)
    experiment = embedded.get_experiment_by_name("tiny-embedded")
    ranked = embedded.search_runs([experiment.experiment_id], order_by=["metrics.val_f1 DESC"])
    assert len(ranked) == 2 and ranked[0].data.metrics["val_f1"] >= ranked[1].data.metrics["val_f1"]


@pytest.mark.parametrize(
    "crash, status, code", [(RuntimeError("disk full"), "FAILED", 1), (KeyboardInterrupt(), "KILLED", 130)]
)
def test_a_crash_never_leaves_a_finished_run(embedded, monkeypatch, capsys, crash, status, code):
    def boom(*args, **kwargs):
        raise crash

    monkeypatch.setattr("mlplatform.training.artifacts.log_model", boom)
    assert finetune.main([*QUICK, "--epochs", "1"]) == code
    (run,) = _runs(embedded, "tiny-embedded")
    assert run.info.status == status
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("finetune:")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--learning-rate", "-0.1"], "--learning-rate='-0.1' is not valid: expected greater than 0"),
        (["--epochs", "0"], "--epochs='0' is not valid: expected greater than or equal to 1"),
        (["--val-fraction", "1.5"], "--val-fraction='1.5' is not valid: expected less than 1"),
        (["--max-length", "2"], "--max-length='2' is not valid"),
    ],
)
def test_bad_hyperparameters_fail_clearly_without_a_run(embedded, capsys, flags, message):
    with pytest.raises(SystemExit) as exited:
        finetune.main([*QUICK, *flags])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
    assert _runs(embedded, "tiny-embedded") == []


def test_a_bad_hyperparameter_env_var_stops_before_a_run(embedded, monkeypatch, capsys):
    monkeypatch.setenv("LEARNING_RATE", "-0.1")
    with pytest.raises(SystemExit) as exited:
        finetune.main(QUICK)
    assert exited.value.code == 1
    assert "LEARNING_RATE='-0.1' is not valid: expected greater than 0" in capsys.readouterr().err
    assert _runs(embedded, "tiny-embedded") == []


def test_a_model_that_cannot_load_fails_clearly_without_a_run(embedded, capsys):
    assert finetune.main([*QUICK, "--pretrained-model", "/nonexistent/model"]) == 1
    assert "cannot load PRETRAINED_MODEL" in capsys.readouterr().err
    assert _runs(embedded, "tiny-embedded") == []


def test_empty_dataset_and_missing_clean_fail_clearly(embedded, monkeypatch, tmp_path, capsys):
    storage = open_storage(Settings.load())
    empty = pd.DataFrame({"id": pd.Series(dtype=str), "text": pd.Series(dtype=str), "label": pd.Series(dtype="int64")})
    lake.publish(storage, "clean", {"train": empty, "test": empty}, source="empty")
    assert finetune.main(QUICK) == 1
    assert "clean/train has no rows" in capsys.readouterr().err
    monkeypatch.setenv("LAKE_DIR", str(tmp_path / "no-lake"))
    assert finetune.main(QUICK) == 1
    assert "no dataset at" in capsys.readouterr().err
    assert _runs(embedded, "tiny-embedded") == []


def test_env_vars_set_hyperparameters_and_flags_override(embedded, monkeypatch):
    monkeypatch.setenv("LEARNING_RATE", "0.002")
    monkeypatch.setenv("EPOCHS", "1")
    assert finetune.main([*QUICK[2:], "--learning-rate", "0.004"]) == 0
    (run,) = _runs(embedded, "tiny-embedded")
    assert run.data.params["learning_rate"] == "0.004" and run.data.params["epochs"] == "1"


def test_help_lists_every_hyperparameter(capsys):
    with pytest.raises(SystemExit):
        finetune.main(["--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for env in (
        "PRETRAINED_MODEL",
        "LEARNING_RATE",
        "EPOCHS",
        "BATCH_SIZE",
        "MAX_LENGTH",
        "WEIGHT_DECAY",
        "WARMUP_RATIO",
        "SEED",
        "TRAIN_SAMPLES",
        "TEST_SAMPLES",
        "VAL_FRACTION",
    ):
        assert f"env {env}" in out


def test_tracking_server_with_artifacts_in_s3(mlflow_server, s3_env, monkeypatch, tiny_bert):
    monkeypatch.setenv("MLFLOWSERVER_URL", mlflow_server["url"])
    monkeypatch.setenv("MLFLOW_EXP_NAME", "tiny-server")
    monkeypatch.setenv("PRETRAINED_MODEL", str(tiny_bert))
    assert data_preparation.main(["--source", "sample:200"]) == 0
    assert clean_data.main([]) == 0
    assert finetune.main([*QUICK, "--epochs", "1"]) == 0
    mlflow.set_tracking_uri(mlflow_server["url"])
    (run,) = _runs(MlflowClient(), "tiny-server")
    assert run.info.status == "FINISHED"
    assert run.data.params["dataset_location"] == f"s3://{s3_env['AWS_BUCKET']}/imdb/clean"
    s3 = boto3.client(
        "s3",
        endpoint_url=mlflow_server["s3_endpoint"],
        region_name="us-east-1",
        aws_access_key_id="testing-key",
        aws_secret_access_key="testing-secret-value",
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=mlflow_server["bucket"]).get("Contents", [])]
    assert any(k.endswith("plots/learning_curve.png") for k in keys)
    assert any(k.endswith(".safetensors") for k in keys), "model weights land in the S3 bucket"
    model = mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/model")
    assert set(model.predict(pd.DataFrame({"text": ["great film"]}))["label"]) <= {"negative", "positive"}
    assert "testing-secret-value" not in str(run.data.params) + str(run.data.tags)


def test_rerun_with_same_hyperparameters_is_skipped_unless_forced(embedded, caplog):
    assert finetune.main([*QUICK, "--epochs", "1"]) == 0
    assert finetune.main([*QUICK, "--epochs", "1"]) == 0
    assert "nothing to do" in caplog.text
    assert len(_runs(embedded, "tiny-embedded")) == 1
    assert finetune.main([*QUICK, "--epochs", "1", "--force"]) == 0
    assert len(_runs(embedded, "tiny-embedded")) == 2


def test_only_rank_zero_of_a_distributed_launch_talks_to_mlflow(embedded, monkeypatch):
    monkeypatch.setenv("RANK", "1")  # what torchrun sets in the second process
    assert finetune.main([*QUICK, "--epochs", "1"]) == 0
    assert _runs(embedded, "tiny-embedded") == []
    monkeypatch.setenv("RANK", "0")
    assert finetune.main([*QUICK, "--epochs", "1"]) == 0
    assert len(_runs(embedded, "tiny-embedded")) == 1


def test_a_pickled_checkpoint_is_not_loaded(tiny_bert, tmp_path):
    """PRETRAINED_MODEL loads safetensors only: a pytorch_model.bin (pickle) can run code when it is unpickled."""
    import torch
    from transformers import AutoModel

    from mlplatform.errors import DataError
    from mlplatform.training.hf import load_model

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    torch.save(AutoModel.from_pretrained(tiny_bert).state_dict(), pickled / "pytorch_model.bin")
    for name in ("config.json", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json"):
        if (tiny_bert / name).is_file():
            (pickled / name).write_bytes((tiny_bert / name).read_bytes())
    assert (pickled / "pytorch_model.bin").is_file() and not (pickled / "model.safetensors").exists()
    with pytest.raises(DataError, match="cannot load PRETRAINED_MODEL"):
        load_model(str(pickled))
    assert load_model(str(tiny_bert))[1] is not None, "a safetensors checkpoint loads"
