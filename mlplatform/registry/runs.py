"""Finding runs in the experiment: the best FINISHED run by a metric, and the top candidates."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlplatform.errors import PlatformError
from mlplatform.registry import tracking
from mlplatform.registry.tracking import NotInTracking, mlflow_errors
from mlplatform.settings import Settings

RUN_ID_RE = re.compile(r"[0-9a-f]{32}")
METRIC_RE = re.compile(r"[A-Za-z0-9_.-]{1,128}")


class RunNotFound(PlatformError):
    """No such run, or no FINISHED run has the metric."""


def maximise(metric: str) -> bool:
    """Metrics with "loss" in the name are minimised; all others (accuracy, f1, ...) are maximised."""
    return "loss" not in metric.lower()


@dataclass(frozen=True)
class RunSummary:
    """What a person needs to choose and deploy a run."""

    run_id: str
    run_name: str
    experiment_id: str
    metric: str | None
    metric_value: float | None
    params: dict
    metrics: dict
    start_time: int
    tags: dict = field(default_factory=dict)

    @property
    def model_uri(self) -> str:
        return f"runs:/{self.run_id}/model"


def _summary(run, metric: str | None) -> RunSummary:
    return RunSummary(
        run_id=run.info.run_id,
        run_name=run.info.run_name or "",
        experiment_id=run.info.experiment_id,
        metric=metric,
        metric_value=run.data.metrics.get(metric) if metric else None,
        params=dict(run.data.params),
        metrics=dict(run.data.metrics),
        start_time=run.info.start_time or 0,
        tags={k: v for k, v in run.data.tags.items() if not k.startswith("mlflow.")},
    )


def _experiment_id(client, settings: Settings) -> str | None:
    with mlflow_errors("MLflow"):
        experiment = client.get_experiment_by_name(settings.mlflow_exp_name)
    return experiment.experiment_id if experiment else None


def top_runs(settings: Settings, metric: str, limit: int = 5) -> list[RunSummary]:
    """FINISHED runs of MLFLOW_EXP_NAME that logged `metric`, best first."""
    if not METRIC_RE.fullmatch(metric):
        raise RunNotFound(f"invalid metric name {metric!r}")
    client = tracking.client(settings)
    experiment_id = _experiment_id(client, settings)
    if experiment_id is None:
        return []
    order = "DESC" if maximise(metric) else "ASC"
    with mlflow_errors("MLflow search"):
        runs = client.search_runs(
            [experiment_id],
            filter_string=f"attributes.status = 'FINISHED' and metrics.`{metric}` > -1e308",
            order_by=[f"metrics.`{metric}` {order}", "attributes.start_time DESC"],
            max_results=limit,
        )
    return [_summary(run, metric) for run in runs]


def best_run(settings: Settings, metric: str) -> RunSummary:
    """The best FINISHED run by `metric`; RunNotFound when there is none."""
    runs = top_runs(settings, metric, limit=1)
    if not runs:
        raise RunNotFound(f"no FINISHED run in experiment {settings.mlflow_exp_name!r} has the metric {metric!r}")
    return runs[0]


def get_run(settings: Settings, run_id: str, metric: str | None = None) -> RunSummary:
    """A run by id, which must belong to MLFLOW_EXP_NAME and be FINISHED."""
    if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
        raise RunNotFound(f"invalid run id {run_id!r}: expected 32 hex characters")
    client = tracking.client(settings)
    try:
        with mlflow_errors("MLflow", missing=f"run {run_id} not found"):
            run = client.get_run(run_id)
    except NotInTracking as exc:
        raise RunNotFound(str(exc)) from None
    if run.info.experiment_id != _experiment_id(client, settings):
        raise RunNotFound(f"run {run_id} is not in experiment {settings.mlflow_exp_name!r}")
    if run.info.status != "FINISHED":
        raise RunNotFound(f"run {run_id} is {run.info.status}, not FINISHED")
    return _summary(run, metric)


def describe_run(settings: Settings, run_id: str) -> RunSummary | None:
    """A registered version's run, from any experiment; None when MLflow no longer has it."""
    try:
        with mlflow_errors("MLflow", missing=f"run {run_id} not found"):
            return _summary(tracking.client(settings).get_run(run_id), None)
    except NotInTracking:
        return None


def metric_names(settings: Settings) -> list[str]:
    """Every metric logged by a FINISHED run of the experiment, sorted."""
    client = tracking.client(settings)
    experiment_id = _experiment_id(client, settings)
    if experiment_id is None:
        return []
    with mlflow_errors("MLflow search"):
        runs = client.search_runs([experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=200)
    return sorted({name for run in runs for name in run.data.metrics})


def metric_histories(settings: Settings, run_ids: list[str], metric: str) -> dict[str, list[tuple[int, float]]]:
    """{run_id: [(step, value), ...]} for drawing the curves of several runs."""
    client = tracking.client(settings)
    with mlflow_errors("MLflow"):
        return {
            run_id: sorted((m.step, m.value) for m in client.get_metric_history(run_id, metric)) for run_id in run_ids
        }
