"""MLflow configured once, and its errors mapped once: the base of the `Registry` object."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from mlplatform.errors import PlatformError, without_password

if TYPE_CHECKING:
    from mlplatform.settings import Settings

_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND", "INVALID_PARAMETER_VALUE")
# MLflow's defaults retry an unreachable server for minutes; a job should fail in seconds and say why.
_HTTP_DEFAULTS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": 2,
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": 1,
    "MLFLOW_HTTP_REQUEST_TIMEOUT": 60,
}


class TrackingUnavailable(PlatformError):
    """MLflow could not be reached, or failed."""


class NotInTracking(PlatformError):
    """What was asked for (a run, a registered model, a version, an alias) does not exist in MLflow."""


def tracking_uri(settings: Settings) -> str:
    """The tracking server when one is configured, otherwise the embedded backend store."""
    return settings.mlflowserver_url or settings.mlflow_backend_store_uri


@contextlib.contextmanager
def mlflow_errors(what: str, missing: str | None = None):
    """Turn MLflow's and the artifact store's exceptions into ours; `missing` is the message for not-found."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except MlflowException as exc:
        if missing is not None and exc.error_code in _NOT_FOUND:
            raise NotInTracking(missing) from None
        raise TrackingUnavailable(f"{what} failed: {without_password(exc.message[:300])}") from None
    except PlatformError:
        raise
    except (OSError, ConnectionError, TimeoutError) as exc:
        raise TrackingUnavailable(f"{what} failed: {type(exc).__name__}: {without_password(str(exc)[:200])}") from None
    except Exception as exc:  # botocore's ClientError and friends, from the artifact store
        if type(exc).__module__.startswith(("botocore", "boto3", "requests", "urllib3")):
            raise TrackingUnavailable(f"{what} failed: {type(exc).__name__}") from None
        raise


def or_none(call, *args):
    """`call(*args)`, or None when MLflow says the thing does not exist."""
    try:
        with mlflow_errors("MLflow", missing=""):
            return call(*args)
    except NotInTracking:
        return None


class Tracking:
    """The configured MLflow: the tracking and registry URI, the client, the experiment, links to the UI."""

    def __init__(self, settings: Settings):
        from mlflow.tracking import MlflowClient

        self.settings = settings
        self.uri = tracking_uri(settings)
        _configure_mlflow(settings, self.uri)
        self.client = MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def prepare_store(self) -> None:
        """Create or migrate a database store now, in one process: workers that each open a fresh sqlite file at
        once race to create the same tables ("table ... already exists"). A tracking server needs nothing."""
        if self.uri.startswith(("http://", "https://", "databricks")):
            return
        with mlflow_errors(f"MLflow at {self.uri}"):
            self.client.search_experiments(max_results=1)  # opening the store creates and migrates its schema
            self.client.search_registered_models(max_results=1)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        """The run's page in the MLflow UI."""
        ui = self.settings.mlflow_ui_url or self.settings.mlflowserver_url or "http://127.0.0.1:5000"
        return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"

    def find_experiment(self) -> str | None:
        """The id of MLFLOW_EXP_NAME, or None while it does not exist (read-only)."""
        with mlflow_errors(f"MLflow at {self.uri}"):
            experiment = self.client.get_experiment_by_name(self.settings.mlflow_exp_name)
        return experiment.experiment_id if experiment else None

    def ensure_experiment(self, suffix: str = "") -> str:
        """Create MLFLOW_EXP_NAME (or `<MLFLOW_EXP_NAME><suffix>`, beside it: -gate, -monitoring) if needed and
        return its id.

        In the embedded mode the artifact location is ours to choose (local folder, or the bucket); a tracking
        server chooses its own.
        """
        settings = self.settings
        name = settings.mlflow_exp_name + suffix
        with mlflow_errors(f"MLflow at {self.uri}"):
            experiment = self.client.get_experiment_by_name(name)
            if experiment is not None:
                if experiment.lifecycle_stage == "deleted":
                    self.client.restore_experiment(experiment.experiment_id)
                return experiment.experiment_id
            location = None if settings.mlflowserver_url else settings.artifact_root
            return self.client.create_experiment(name, artifact_location=location)

    def logged_model_id(self, run_id: str) -> str | None:
        """The MLflow 3 logged model of a run (the UI shows its metrics per dataset), if there is one."""
        try:
            run = self.client.get_run(run_id)
            models = getattr(getattr(run, "outputs", None), "model_outputs", None) or []
            return models[0].model_id if models else None
        except Exception:  # noqa: BLE001 - older servers have no logged models; metrics are kept without the link
            return None

    def download(self, artifact_uri: str, target: str | Path, what: str, missing: str) -> str:
        """An artifact (or folder) of the configured MLflow into `target`."""
        import mlflow

        with mlflow_errors(what, missing=missing):
            return mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=str(target), tracking_uri=self.uri
            )


def _configure_mlflow(settings: Settings, uri: str) -> None:
    """This process's MLflow: the store, short HTTP retries, and the lake's S3 endpoint and keys for artifacts.

    MLflow reads its S3 endpoint and keys only from the environment; rather than write them there, the S3 artifact
    repository is registered again with them given, so they go from the settings to MLflow and nowhere else.
    """
    import mlflow
    from mlflow import environment_variables as mlflow_env

    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)  # the registry follows it: no registry URI of its own to outlive this object
    for name, value in _HTTP_DEFAULTS.items():
        getattr(mlflow_env, name).default = value  # a default only: the variable, when set, still wins
    # The login, read from the environment or an --env-file, goes to MLflow the same way: as its default.
    mlflow_env.MLFLOW_TRACKING_USERNAME.default = settings.mlflow_tracking_username
    mlflow_env.MLFLOW_TRACKING_PASSWORD.default = settings.mlflow_tracking_password
    if settings.aws_endpoint_url or settings.aws_access_key_id:
        _register_s3_repository(settings)


def _register_s3_repository(settings: Settings) -> None:
    from mlflow.store.artifact import s3_artifact_repo
    from mlflow.store.artifact.artifact_repository_registry import _artifact_repository_registry

    class LakeS3ArtifactRepository(s3_artifact_repo.S3ArtifactRepository):
        def _get_s3_client(self):
            return s3_artifact_repo._get_s3_client(
                access_key_id=settings.aws_access_key_id,
                secret_access_key=settings.aws_secret_access_key,
                region_name=settings.aws_region_name,
                s3_endpoint_url=settings.aws_endpoint_url,
            )

    _artifact_repository_registry.register("s3", LakeS3ArtifactRepository)
