"""The one way to reach MLflow: the tracking store, the configured client, and MLflow errors mapped once."""

from __future__ import annotations

import contextlib
from pathlib import Path

from mlplatform.errors import PlatformError
from mlplatform.settings import Settings


class TrackingUnavailable(PlatformError):
    """MLflow could not be reached, or failed."""


class NotInTracking(PlatformError):
    """What was asked for (a run, a registered model, a version, an alias) does not exist in MLflow."""


def tracking_uri(settings: Settings) -> str:
    """The tracking server when one is configured, otherwise the embedded backend store."""
    return settings.mlflowserver_url or settings.mlflow_backend_store_uri


def run_url(settings: Settings, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI."""
    ui = settings.mlflow_ui_url or settings.mlflowserver_url or "http://127.0.0.1:5000"
    return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"


def configure(settings: Settings) -> str:
    """Point this process's MLflow at the configured store; return the tracking URI."""
    import mlflow

    uri = tracking_uri(settings)
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    settings.export_s3_for_mlflow()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def client(settings: Settings):
    """The configured `MlflowClient`: every module that talks to MLflow gets it here."""
    from mlflow.tracking import MlflowClient

    uri = configure(settings)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def mlflow_errors(what: str, missing: str | None = None):
    """Turn MLflow's and the artifact store's exceptions into ours; `missing` is the message for not-found."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if missing and exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE"):
            raise NotInTracking(missing) from None
        raise TrackingUnavailable(f"{what} failed: {exc.message[:300]}") from None
    except PlatformError:
        raise
    except (OSError, ConnectionError, TimeoutError) as exc:
        raise TrackingUnavailable(f"{what} failed: {type(exc).__name__}: {str(exc)[:200]}") from None
    except Exception as exc:  # botocore's ClientError and friends, from the artifact store
        if type(exc).__module__.startswith(("botocore", "boto3", "requests", "urllib3")):
            raise TrackingUnavailable(f"{what} failed: {type(exc).__name__}") from None
        raise


def find_experiment(settings: Settings) -> str | None:
    """The id of MLFLOW_EXP_NAME, or None while it does not exist (read-only)."""
    with mlflow_errors(f"MLflow at {tracking_uri(settings)}"):
        experiment = client(settings).get_experiment_by_name(settings.mlflow_exp_name)
    return experiment.experiment_id if experiment else None


def ensure_experiment(settings: Settings) -> str:
    """Create MLFLOW_EXP_NAME if needed and return its id.

    In the embedded mode the artifact location is ours to choose (local folder, or the bucket); a tracking
    server chooses its own.
    """
    mlflow = client(settings)
    with mlflow_errors(f"MLflow at {tracking_uri(settings)}"):
        experiment = mlflow.get_experiment_by_name(settings.mlflow_exp_name)
        if experiment is not None:
            if experiment.lifecycle_stage == "deleted":
                mlflow.restore_experiment(experiment.experiment_id)
            return experiment.experiment_id
        location = None if settings.mlflowserver_url else settings.artifact_root
        return mlflow.create_experiment(settings.mlflow_exp_name, artifact_location=location)
