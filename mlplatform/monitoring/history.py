"""The monitoring windows logged to MLflow (`<MLFLOW_EXP_NAME>-monitoring`), oldest first: what MLDash plots and
what the retraining sensor reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from mlplatform.registry.tracking import mlflow_errors

EXPERIMENT_SUFFIX = "-monitoring"
KIND = "monitoring"


@dataclass(frozen=True)
class Window:
    run_id: str
    end: datetime
    version: str
    status: str
    alerts: list[str]
    metrics: dict[str, float]


def windows(registry, experiment_name: str, model_name: str, limit: int = 200) -> list[Window]:
    """The latest `limit` monitoring runs of `model_name`, oldest first."""
    client = registry.client
    with mlflow_errors("MLflow"):
        experiment = client.get_experiment_by_name(experiment_name + EXPERIMENT_SUFFIX)
        if experiment is None:
            return []
        runs = client.search_runs(
            [experiment.experiment_id],
            filter_string=f"tags.`mlplatform.kind` = '{KIND}' and tags.model_name = '{model_name}'",
            order_by=["attributes.start_time DESC"],
            max_results=limit,
        )
    found = []
    for run in runs:
        tags = run.data.tags
        try:
            end = datetime.fromisoformat(tags["window_end"])
        except (KeyError, ValueError):
            continue
        alerts = [a for a in tags.get("alerts", "").split("; ") if a]
        found.append(
            Window(
                run.info.run_id, end, tags.get("model_version", ""), tags.get("status", ""), alerts, run.data.metrics
            )
        )
    return sorted(found, key=lambda w: w.end)
