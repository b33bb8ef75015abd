"""The five jobs as subprocesses, configured only by env vars: S3 lake (moto server), a real MLflow server,
MLFlask under gunicorn; the sample source and the tiny BERT."""

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
import requests
from mlflow.tracking import MlflowClient

from tests.helpers.services import PLATFORM_VARS, env_without, start_mlflask, stop_process

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.live


def _pipeline(env, *args):
    return subprocess.run(
        [sys.executable, str(REPO / "jobs" / "run_pipeline.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_five_jobs_end_to_end(s3_env, mlflow_server, tiny_bert, sentiment_bert, tmp_path):
    env = {
        **env_without(*PLATFORM_VARS),
        **s3_env,
        "MLFLOWSERVER_URL": mlflow_server["url"],
        "MLFLOW_EXP_NAME": "e2e",
        "DATA_CACHE_DIR": str(tmp_path / "cache"),
        "DATA_SOURCE": "sample:1000",
        "PRETRAINED_MODEL": str(sentiment_bert),
        "EPOCHS": "2",
        "LEARNING_RATE": "1e-4",
        "MAX_LENGTH": "128",
        "TRAIN_SAMPLES": "0",
        "TEST_SAMPLES": "0",
        "MODEL_NAME": "e2e-movie",
        "DEPLOY_METRIC": "val_accuracy",
    }
    url, process, _, _ = start_mlflask(tmp_path, env)
    env["MLFLASK_URL"] = url
    try:
        first = _pipeline(env)
        assert first.returncode == 0, first.stdout + first.stderr
        steps = ("raw_reviews", "clean_reviews", "finetuned_model", "challenger_evaluation", "champion_deployment")
        for step in (*steps, "served_predictions"):
            assert f"== {step}: ok" in first.stdout
        assert "5 of 5 behavioural checks passed" in first.stdout

        # A second run with another learning rate, from the untaught tiny BERT: it cannot win.
        weaker = _pipeline({**env, "LEARNING_RATE": "1e-6", "PRETRAINED_MODEL": str(tiny_bert)}, "--only", "finetune")
        assert weaker.returncode == 0, weaker.stderr
        again = _pipeline(env, "--from", "model_deployment")
        assert again.returncode == 0, again.stdout + again.stderr
        assert "MLFlask already served models:/e2e-movie@champion (version 1," in again.stdout

        rerun = _pipeline(env)
        assert rerun.returncode == 0
        assert "reused" in rerun.stdout and "MLFlask already served" in rerun.stdout

        s3 = boto3.client(
            "s3",
            endpoint_url=s3_env["AWS_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id=s3_env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=s3_env["AWS_SECRET_ACCESS_KEY"],
        )
        for stage, rows in (("raw", 800), ("clean", 800)):
            body = s3.get_object(Bucket=s3_env["AWS_BUCKET"], Key=f"imdb/{stage}/_manifest.json")["Body"].read()
            manifest = json.loads(body)
            assert manifest["files"]["train"]["rows"] == rows and manifest["source"] == "sample:1000 seed=42"

        import mlflow

        mlflow.set_tracking_uri(mlflow_server["url"])
        client = MlflowClient()
        experiment = client.get_experiment_by_name("e2e")
        runs = client.search_runs([experiment.experiment_id], order_by=["metrics.val_accuracy DESC"])
        assert sorted(r.data.params["learning_rate"] for r in runs) == ["0.0001", "1e-06"]
        assert all(r.info.status == "FINISHED" for r in runs)
        best = runs[0]
        assert best.data.metrics["val_accuracy"] > runs[1].data.metrics["val_accuracy"]

        deployed = {m["name"]: m for m in requests.get(url + "/models", timeout=5).json()["models"]}
        assert deployed["e2e-movie"]["run_id"] == best.info.run_id
        assert client.get_model_version_by_alias("e2e-movie", "champion").run_id == best.info.run_id

        check = subprocess.run(
            [sys.executable, str(REPO / "jobs" / "interface_handler.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert check.returncode == 0 and "Very good movie!" in check.stdout
        broken = subprocess.run(
            [sys.executable, str(REPO / "jobs" / "interface_handler.py"), "--name", "ghost"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert broken.returncode == 1 and broken.stderr.strip().splitlines()[-1].startswith("interface_handler: error:")
    finally:
        stop_process(process)
