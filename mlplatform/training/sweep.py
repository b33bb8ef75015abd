"""Hyperparameter sweeps of job 3 with Optuna: one MLflow parent run, one child run per trial.

Trials are pruned on the validation metric that the evaluations during training already log (DEPLOY_METRIC,
e.g. val_f1), with Optuna's median pruner. The study lives in SWEEP_STORAGE under a name derived from the base
hyperparameters, the search space and the dataset, so rerunning the same command resumes a killed sweep: it
runs only the trials still missing. Several machines sharing one storage (a database server) and the same
command each take trials from the same study.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from mlplatform.data import lake
from mlplatform.data.storage import open_storage
from mlplatform.errors import ConfigError, without_password
from mlplatform.registry import Registry
from mlplatform.registry.runs import maximise
from mlplatform.settings import Settings
from mlplatform.training.config import SEARCH_SPACE, TrainConfig
from mlplatform.training.finetune import run_finetune

log = logging.getLogger(__name__)
PARENT_ATTR = "mlflow_parent_run_id"


@dataclass(frozen=True)
class SweepResult:
    parent_run_id: str
    study_name: str
    best_run_id: str | None
    best_value: float | None
    best_params: dict
    trials_run: int
    trials_done: int
    pruned: int


def load_space(path: str | Path | None) -> dict[str, dict]:
    """SEARCH_SPACE with the entries of a YAML or JSON file over it; each entry checked."""
    space = {name: dict(spec) for name, spec in SEARCH_SPACE.items()}
    if path:
        text = Path(path).read_text() if Path(path).is_file() else None
        if text is None:
            raise ConfigError(f"--space {path}: no such file")
        try:
            import yaml

            given = yaml.safe_load(text)  # JSON is YAML too
        except yaml.YAMLError as exc:
            raise ConfigError(f"--space {path}: not YAML or JSON: {exc}") from None
        if not isinstance(given, dict):
            raise ConfigError(f"--space {path}: expected a mapping of hyperparameter -> range")
        space.update(given)
    for name, spec in space.items():
        _check(name, spec)
    return space


def _check(name: str, spec) -> None:
    if name not in TrainConfig.model_fields:
        known = ", ".join(TrainConfig.model_fields)
        raise ConfigError(f"search space: {name!r} is not a hyperparameter (one of {known})")
    choices = isinstance(spec, dict) and isinstance(spec.get("choices"), list) and bool(spec["choices"])
    bounds = isinstance(spec, dict) and {"low", "high"} <= spec.keys() and spec["low"] <= spec["high"]
    ok = choices or bounds
    if not ok:
        raise ConfigError(f"search space: {name}: expected {{low, high[, log]}} or {{choices: [...]}}, got {spec!r}")


def suggest(trial, space: dict[str, dict]) -> dict:
    params = {}
    for name, spec in space.items():
        if "choices" in spec:
            params[name] = trial.suggest_categorical(name, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], log=bool(spec.get("log")))
        else:
            params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")))
    return params


def study_name(settings: Settings, base: TrainConfig, space: dict, dataset_digest: str) -> str:
    identity = json.dumps([base.params(), space, dataset_digest, settings.deploy_metric], sort_keys=True, default=str)
    return f"{settings.mlflow_exp_name}-sweep-{hashlib.sha256(identity.encode()).hexdigest()[:10]}"


class TrialReporter:
    """Passed to job 3's training: reports each evaluation to the trial, and stops training when it is pruned."""

    def __init__(self, trial, metric: str):
        self.trial = trial
        self.metric = metric
        self.pruned = False

    def report(self, step: int, metrics: dict) -> bool:
        """Record the evaluation; True when the trial should stop here."""
        value = metrics.get(self.metric)
        if value is None:
            return False
        self.trial.report(float(value), step)
        self.pruned = self.trial.should_prune()
        return self.pruned


def run_sweep(settings: Settings, base: TrainConfig, trials: int, space: dict, prune: bool = True) -> SweepResult:
    """Run the trials still missing from this sweep's study (all of them the first time); `prune=False` runs
    every trial to its end."""
    import mlflow
    import optuna
    from optuna.trial import TrialState

    if settings.world_size > 1:
        raise ConfigError("a sweep runs its trials one at a time in one process; launch it without torchrun")
    metric = settings.deploy_metric
    manifest = lake.read_manifest(open_storage(settings), "clean")
    if manifest is None:
        raise ConfigError("no clean/ dataset to sweep on: run jobs 1 and 2 first")
    name = study_name(settings, base, space, lake.manifest_digest(manifest))
    _prepare_storage(settings.sweep_storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name,
        storage=settings.sweep_storage,
        direction="maximize" if maximise(metric) else "minimize",
        sampler=optuna.samplers.TPESampler(seed=base.seed),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0)
        if prune
        else optuna.pruners.NopPruner(),
        load_if_exists=True,
    )
    for stale in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(stale.number, state=TrialState.FAIL)  # a killed sweep's trial: it is run again, not counted
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    missing = max(0, trials - done)
    registry = Registry(settings)
    experiment_id = registry.ensure_experiment()
    parent_id = study.user_attrs.get(PARENT_ATTR)
    if parent_id and registry.describe_run(parent_id) is None:
        parent_id = None
    if parent_id:
        _close_orphans(registry, experiment_id, parent_id)
    storage_shown = without_password(settings.sweep_storage)
    opened = {"run_id": parent_id} if parent_id else {"experiment_id": experiment_id, "run_name": f"sweep {name}"}
    with mlflow.start_run(**opened) as parent:
        if not parent_id:
            study.set_user_attr(PARENT_ATTR, parent.info.run_id)
            mlflow.set_tags({"mlplatform.kind": "sweep", "optuna.study": name, "optuna.storage": storage_shown})
            mlflow.log_params({"sweep_trials": trials, "sweep_metric": metric, "search_space": json.dumps(space)})
        log.info("sweep %s: %d of %d trials done, running %d (storage %s)", name, done, trials, missing, storage_shown)

        def objective(trial) -> float:
            config = _config(base, suggest(trial, space))
            reporter = TrialReporter(trial, metric)
            result = run_finetune(settings, config, force=True, parent_run_id=parent.info.run_id, reporter=reporter)
            trial.set_user_attr("mlflow_run_id", result.run_id)
            if result.pruned:
                raise optuna.TrialPruned()
            return float(result.metrics[metric])

        if missing:
            study.optimize(objective, n_trials=missing, catch=())
        result = _summarise(study, name, missing)
        _log_parent(study, result, metric)
    return result


def _close_orphans(registry, experiment_id: str, parent_id: str) -> None:
    """Child runs a killed sweep left RUNNING: marked KILLED (their trials were marked FAIL and run again)."""
    orphans = registry.client.search_runs(
        [experiment_id],
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and attributes.status = 'RUNNING'",
    )
    for run in orphans:
        registry.client.set_terminated(run.info.run_id, "KILLED")


def _prepare_storage(url: str) -> None:
    """A sqlite storage's folder must exist (Optuna creates the file, not its folder)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def _config(base: TrainConfig, params: dict) -> TrainConfig:
    try:
        return TrainConfig(**{**base.params(), **params})
    except ValidationError as exc:
        raise ConfigError(f"search space gives invalid hyperparameters {params}: {exc.errors()[0]['msg']}") from None


def _summarise(study, name: str, ran: int) -> SweepResult:
    from optuna.trial import TrialState

    completed = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    best = study.best_trial if completed else None
    return SweepResult(
        parent_run_id=study.user_attrs.get(PARENT_ATTR, ""),
        study_name=name,
        best_run_id=best.user_attrs.get("mlflow_run_id") if best else None,
        best_value=best.value if best else None,
        best_params=dict(best.params) if best else {},
        trials_run=ran,
        trials_done=len(completed) + len(pruned),
        pruned=len(pruned),
    )


def _log_parent(study, result: SweepResult, metric: str) -> None:
    import mlflow

    mlflow.set_tags({"sweep.trials_done": result.trials_done, "sweep.pruned": result.pruned})
    if result.best_run_id is None:
        return
    mlflow.set_tag("sweep.best_run_id", result.best_run_id)
    mlflow.log_params({f"best_{k}": v for k, v in result.best_params.items()} | {"best_trial_params": "see best_*"})
    mlflow.log_metric(f"best_{metric}", result.best_value)
    try:
        import matplotlib

        matplotlib.use("Agg")
        from optuna.visualization.matplotlib import plot_parallel_coordinate

        axes = plot_parallel_coordinate(study)
        mlflow.log_figure(axes.figure, "sweep/parallel_coordinates.png")
    except Exception as exc:  # noqa: BLE001 - a plot must not fail a finished sweep
        log.warning("no parallel-coordinates plot: %s", exc)
    frame = study.trials_dataframe(attrs=("number", "value", "state", "params", "user_attrs"))
    mlflow.log_text(frame.to_csv(index=False), "sweep/trials.csv")
