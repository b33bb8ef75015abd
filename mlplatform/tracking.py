"""Where MLflow lives: a tracking server (MLFLOWSERVER_URL) or the embedded sqlite store, and the experiment."""

from __future__ import annotations

import os
from pathlib import Path

from mlplatform.errors import PlatformError
from mlplatform.settings import Settings


class TrackingUnavailable(PlatformError):
    """MLflow could not be reached."""


def tracking_uri(settings: Settings) -> str:
    """The tracking server when one is configured, otherwise the embedded backend store."""
    return settings.mlflowserver_url or settings.mlflow_backend_store_uri


def configure(settings: Settings) -> str:
    """Point this process's MLflow client at the configured store; return the tracking URI.

    S3 artifact clients in MLflow read the endpoint and credentials from the environment, so the lake's
    settings are passed on there (in this process only; nothing is logged).
    """
    import mlflow

    uri = tracking_uri(settings)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    if settings.aws_endpoint_url:
        os.environ["MLFLOW_S3_ENDPOINT_URL"] = settings.aws_endpoint_url
    for name, value in (
        ("AWS_ACCESS_KEY_ID", settings.aws_access_key_id),
        ("AWS_SECRET_ACCESS_KEY", settings.aws_secret_access_key),
        ("AWS_DEFAULT_REGION", settings.aws_region_name),
    ):
        if value:
            os.environ[name] = value
    # MLflow's defaults retry an unreachable server for minutes; a job should fail in seconds and say why.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    mlflow.set_tracking_uri(uri)
    return uri


def find_experiment(settings: Settings) -> str | None:
    """The id of MLFLOW_EXP_NAME, or None while it does not exist (read-only)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        experiment = MlflowClient().get_experiment_by_name(settings.mlflow_exp_name)
    except MlflowException as exc:
        raise TrackingUnavailable(f"MLflow at {tracking_uri(settings)} failed: {exc.message[:300]}") from None
    return experiment.experiment_id if experiment else None


def ensure_experiment(settings: Settings) -> str:
    """Create MLFLOW_EXP_NAME if needed and return its id.

    In the embedded mode the artifact location is ours to choose (local folder, or the bucket); a tracking
    server chooses its own.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        experiment = client.get_experiment_by_name(settings.mlflow_exp_name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        location = None if settings.mlflowserver_url else settings.artifact_root
        return client.create_experiment(settings.mlflow_exp_name, artifact_location=location)
    except MlflowException as exc:
        raise TrackingUnavailable(f"MLflow at {tracking_uri(settings)} failed: {exc.message[:300]}") from None
