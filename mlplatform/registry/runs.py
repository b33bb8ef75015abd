"""Finding runs in the experiment: the best FINISHED run by a metric, the top candidates, a run's curves."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlplatform.errors import PlatformError
from mlplatform.registry.tracking import NotInTracking, Tracking, mlflow_errors

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


class RunQueries(Tracking):
    """The runs of MLFLOW_EXP_NAME, as job 4, MLDash and MLFlask look them up."""

    def top_runs(self, metric: str, limit: int = 5) -> list[RunSummary]:
        """FINISHED runs that logged `metric`, best first."""
        if not METRIC_RE.fullmatch(metric):
            raise RunNotFound(f"invalid metric name {metric!r}")
        experiment_id = self.find_experiment()
        if experiment_id is None:
            return []
        order = "DESC" if maximise(metric) else "ASC"
        with mlflow_errors("MLflow search"):
            runs = self.client.search_runs(
                [experiment_id],
                filter_string=f"attributes.status = 'FINISHED' and metrics.`{metric}` > -1e308",
                order_by=[f"metrics.`{metric}` {order}", "attributes.start_time DESC"],
                max_results=limit,
            )
        return [_summary(run, metric) for run in runs]

    def best_run(self, metric: str) -> RunSummary:
        """The best FINISHED run by `metric`; RunNotFound when there is none."""
        runs = self.top_runs(metric, limit=1)
        if not runs:
            name = self.settings.mlflow_exp_name
            raise RunNotFound(f"no FINISHED run in experiment {name!r} has the metric {metric!r}")
        return runs[0]

    def get_run(self, run_id: str, metric: str | None = None) -> RunSummary:
        """A run by id, which must belong to MLFLOW_EXP_NAME and be FINISHED."""
        if not isinstance(run_id, str) or not RUN_ID_RE.fullmatch(run_id):
            raise RunNotFound(f"invalid run id {run_id!r}: expected 32 hex characters")
        try:
            with mlflow_errors("MLflow", missing=f"run {run_id} not found"):
                run = self.client.get_run(run_id)
        except NotInTracking as exc:
            raise RunNotFound(str(exc)) from None
        if run.info.experiment_id != self.find_experiment():
            raise RunNotFound(f"run {run_id} is not in experiment {self.settings.mlflow_exp_name!r}")
        if run.info.status != "FINISHED":
            raise RunNotFound(f"run {run_id} is {run.info.status}, not FINISHED")
        return _summary(run, metric)

    def describe_run(self, run_id: str) -> RunSummary | None:
        """A registered version's run, from any experiment; None when MLflow no longer has it."""
        try:
            with mlflow_errors("MLflow", missing=f"run {run_id} not found"):
                return _summary(self.client.get_run(run_id), None)
        except NotInTracking:
            return None

    def find_same_run(self, experiment_id: str, params: dict) -> str | None:
        """A FINISHED run with exactly these params (hyperparameters and dataset digest): rerunning would repeat it."""
        wanted = {k: str(v) for k, v in params.items()}
        digest = wanted["dataset_digest"]
        with mlflow_errors("MLflow search"):
            runs = self.client.search_runs(
                [experiment_id],
                filter_string=f"attributes.status = 'FINISHED' and params.dataset_digest = '{digest}'",
                max_results=200,
            )
        return next((run.info.run_id for run in runs if wanted.items() <= run.data.params.items()), None)

    def metric_names(self) -> list[str]:
        """Every metric logged by a FINISHED run of the experiment, sorted."""
        experiment_id = self.find_experiment()
        if experiment_id is None:
            return []
        with mlflow_errors("MLflow search"):
            runs = self.client.search_runs(
                [experiment_id], filter_string="attributes.status = 'FINISHED'", max_results=200
            )
        return sorted({name for run in runs for name in run.data.metrics})

    def metric_histories(self, run_ids: list[str], metric: str) -> dict[str, list[tuple[int, float]]]:
        """{run_id: [(step, value), ...]} for drawing the curves of several runs."""
        with mlflow_errors("MLflow"):
            return {
                run_id: sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, metric))
                for run_id in run_ids
            }
