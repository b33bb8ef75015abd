"""Job 4 as functions: register the chosen run under an alias, then deploy it to MLFlask."""

from __future__ import annotations

import logging

from mlplatform.runs import RunSummary
from mlplatform.settings import Settings
from mlplatform.tracking import TrackingUnavailable, configure

log = logging.getLogger(__name__)
ALIAS = "champion"


def register_champion(settings: Settings, run: RunSummary, model_name: str) -> int:
    """Register the run's model under `model_name` with the alias `champion`; reuse an existing version."""
    import mlflow
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    configure(settings)
    client = MlflowClient()
    try:
        try:
            current = client.get_model_version_by_alias(model_name, ALIAS)
        except MlflowException:
            current = None
        if current is not None and current.run_id == run.run_id:
            return int(current.version)
        existing = [v for v in client.search_model_versions(f"name = '{model_name}'") if v.run_id == run.run_id]
        if existing:
            version = int(existing[0].version)
        else:
            version = int(mlflow.register_model(run.model_uri, model_name, await_registration_for=120).version)
        client.set_registered_model_alias(model_name, ALIAS, str(version))
        client.set_model_version_tag(model_name, str(version), "deployed_by", "model_deployment")
    except MlflowException as exc:
        raise TrackingUnavailable(f"MLflow model registry failed: {exc.message[:300]}") from None
    return version
