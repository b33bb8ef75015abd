"""The five jobs as software-defined assets. Each calls the same `mlplatform` function as its CLI job.

  raw_reviews -> clean_reviews -> finetuned_model -> challenger_evaluation -> champion_deployment
    -> served_predictions

The lake and MLflow hold the data; Dagster holds what each materialization made (manifest digests, the run id,
the registry version) as metadata and data versions, so lineage runs from a review file to a served model.
"""

import base64
import inspect
from datetime import UTC, datetime

import dagster as dg

from mlplatform.data.dataprep import Outcome, clean_raw, prepare_raw
from mlplatform.data.lake import SPLITS, manifest_digest
from mlplatform.data.sources import SourceOptions
from mlplatform.data.storage import Storage
from mlplatform.errors import ConfigError
from mlplatform.monitoring.monitor import monitor
from mlplatform.names import ModelRef
from mlplatform.orchestration.config import (
    BatchPredictionsConfig,
    ChallengerConfig,
    CleanReviewsConfig,
    DeploymentConfig,
    FinetuneConfig,
    ModelMonitoringConfig,
    PredictionsConfig,
    RawReviewsConfig,
    overrides,
)
from mlplatform.orchestration.inputs import LaunchpadLimits
from mlplatform.orchestration.resources import LakeResource, MLFlaskResource, MLflowResource
from mlplatform.promotion.gate import APPROVED, FAILED_CHECKS, PromotionGate
from mlplatform.promotion.serve import promote_and_serve
from mlplatform.registry import Registry
from mlplatform.serving.batch import score_dataset
from mlplatform.serving.behaviour import check_interface, predictions_table, texts_to_check
from mlplatform.training.config import TrainConfig
from mlplatform.training.finetune import run_finetune
from mlplatform.training.launch import run_torchrun
from mlplatform.training.sweep import load_space, run_sweep

GROUP = "sentiment"
DEPLOYMENT = dg.AssetKey("champion_deployment")
EVALUATION = dg.AssetKey("challenger_evaluation")


def _lake_result(storage: Storage, stage: str, outcome: Outcome) -> dg.MaterializeResult:
    manifest = outcome.manifest
    digest = manifest_digest(manifest)
    metadata = {
        "lake": dg.MetadataValue.path(f"{storage.location}/{stage}"),
        "source": manifest["source"],
        "manifest_digest": digest,
        "generation": manifest["generation"],
        "skipped": outcome.skipped,
        "dagster/row_count": sum(manifest["files"][split]["rows"] for split in SPLITS),
    }
    for split in SPLITS:
        entry = manifest["files"][split]
        metadata[f"{split}_rows"] = dg.MetadataValue.int(entry["rows"])
        metadata[f"{split}_labels"] = dg.MetadataValue.json(entry["label_counts"])
    if "quarantined" in manifest:
        metadata["quarantined"] = dg.MetadataValue.json(manifest["quarantined"])
        metadata["train_test_overlap"] = dg.MetadataValue.int(manifest["train_test_overlap"])
    return dg.MaterializeResult(metadata=metadata, data_version=dg.DataVersion(digest))


def raw_reviews(
    context: dg.AssetExecutionContext,
    config: RawReviewsConfig,
    lake: LakeResource,
    launchpad_limits: dg.ResourceParam[LaunchpadLimits],
):
    """Job 1: the reviews of DATA_SOURCE (imdb, hf:, csv:, sample) as the lake's raw/ train and test splits."""
    asked = overrides(config, exclude={"source", "force"})
    settings = lake.settings(**asked, **({"data_source": config.source} if config.source else {}))
    launchpad_limits.check_source(config.source, config.imdb_url)
    options = SourceOptions(settings.imdb_url, settings.cache_dir, settings.test_fraction, settings.seed)
    storage = lake.open()
    outcome = prepare_raw(storage, settings.data_source, options, force=config.force)
    context.log.info(f"raw/ {'already held' if outcome.skipped else 'now holds'} {outcome.manifest['source']}")
    return _lake_result(storage, "raw", outcome)


def clean_reviews(context: dg.AssetExecutionContext, config: CleanReviewsConfig, lake: LakeResource):
    """Job 2: raw/ without HTML (BeautifulSoup), empty or mislabelled rows quarantined, as the lake's clean/."""
    storage = lake.open()
    outcome = clean_raw(storage, force=config.force)
    context.log.info(f"clean/ {'was already up to date' if outcome.skipped else 'rewritten'} from raw/")
    return _lake_result(storage, "clean", outcome)


def finetuned_model(context: dg.AssetExecutionContext, config: FinetuneConfig, mlflow: MLflowResource):
    """Job 3: one MLflow run fine-tuning PRETRAINED_MODEL on clean/ (a rerun with the same hyperparameters on the
    same data reuses its run). Launch it alone with other hyperparameters to add a run to compare."""

    settings = mlflow.settings()
    train = TrainConfig.of(settings, **overrides(config, exclude={"force", "nproc", "sweep", "space"}))
    if config.sweep:
        return _sweep(context, settings, train, config, mlflow)
    if config.nproc > 1:
        result = run_torchrun(settings, train, config.nproc, force=config.force)
    else:
        result = run_finetune(settings, train, force=config.force)
    context.log.info(f"run {result.run_id} ({train.run_name}) {'reused' if result.skipped else 'finished'}")
    metrics = {k: dg.MetadataValue.float(float(v)) for k, v in sorted(result.metrics.items()) if k != "step"}
    return dg.MaterializeResult(
        metadata={
            "run_id": result.run_id,
            "run": dg.MetadataValue.url(mlflow.registry().run_url(result.experiment_id, result.run_id)),
            "run_name": train.run_name,
            "reused": result.skipped,
            "train_samples_per_second": dg.MetadataValue.float(round(result.samples_per_second, 2)),
            **metrics,
        },
        data_version=dg.DataVersion(result.run_id),
    )


def _sweep(context, settings, train: TrainConfig, config, mlflow: MLflowResource) -> dg.MaterializeResult:

    result = run_sweep(settings, train, config.sweep, load_space(config.space))
    context.log.info(f"sweep {result.study_name}: best run {result.best_run_id} ({result.best_value})")
    registry = mlflow.registry()
    experiment_id = registry.ensure_experiment()
    return dg.MaterializeResult(
        metadata={
            "run_id": result.best_run_id or "",
            "parent_run": dg.MetadataValue.url(registry.run_url(experiment_id, result.parent_run_id)),
            "study": result.study_name,
            "trials_done": result.trials_done,
            "pruned": result.pruned,
            f"best_{settings.deploy_metric}": dg.MetadataValue.float(float(result.best_value or 0.0)),
            "best_params": dg.MetadataValue.json(result.best_params),
        },
        data_version=dg.DataVersion(result.best_run_id or result.parent_run_id),
    )


def challenger_evaluation(
    context: dg.AssetExecutionContext, config: ChallengerConfig, mlflow: MLflowResource, mlflask: MLFlaskResource
):
    """Job 4's gate: the best runs by DEPLOY_METRIC and the champion scored on the lake's clean/ test split; the
    best run registered as @challenger, served as <name>-challenger, and put through job 5's behavioural checks.
    The champion alias does not move here: champion_deployment moves it only if this approved the challenger."""

    registry = mlflow.registry(**overrides(config, exclude={"run_id", "force"}))
    settings = registry.settings
    result = PromotionGate(registry, mlflask.client(), settings).decide(
        settings.model_name, run_id=config.run_id, force=config.force
    )
    context.log.info(f"gate on {settings.model_name}: {result.decision}: {result.reason}")
    columns = ["role", "version", "run", "data", result.metric, "seconds"]
    comparison = [dg.TableRecord(dict(zip(columns, map(str, row), strict=True))) for row in result.rows()]
    checks = [
        dg.TableRecord({"result": "PASS" if c.passed else "FAIL", "check": c.name, "detail": c.detail})
        for c in result.checks
    ]
    failed = sum(not c.passed for c in result.checks)
    metadata = {
        "model_name": settings.model_name,
        "decision": result.decision,
        "reason": result.reason,
        "challenger_version": result.challenger.version if result.challenger and result.challenger.version else "",
        "champion_version": result.champion.version if result.champion else "",
        "dataset_digest": result.eval_set.digest if result.eval_set else "",
        "comparison": dg.MetadataValue.table(comparison, schema=_string_schema(columns)),
    }
    check = dg.AssetCheckResult(
        check_name="challenger_behaviour",
        passed=result.decision != FAILED_CHECKS,
        description=f"{len(result.checks) - failed} of {len(result.checks)} behavioural checks passed"
        if result.checks
        else "not staged: the champion stays",
        metadata={
            "failed": failed,
            "checks": dg.MetadataValue.table(checks, schema=_string_schema(["result", "check", "detail"])),
        },
    )
    version = metadata["challenger_version"] if result.decision == APPROVED else metadata["champion_version"]
    return dg.MaterializeResult(
        metadata=metadata, check_results=[check], data_version=dg.DataVersion(f"{result.decision}/{version}")
    )


def _string_schema(columns: list[str]) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(c, "string") for c in columns])


def champion_deployment(
    context: dg.AssetExecutionContext, config: DeploymentConfig, mlflow: MLflowResource, mlflask: MLFlaskResource
):
    """Job 4's alias move: MODEL_NAME@alias to the challenger challenger_evaluation approved (else it stays), and
    MLFlask serving models:/MODEL_NAME@alias. A failed deploy leaves the registry and MLFlask as they were."""

    registry = mlflow.registry(**overrides(config, exclude={"version"}))
    settings = registry.settings
    client = mlflask.client()
    name = settings.model_name
    if config.version is not None:  # a rollback is a person's decision: no gate
        promotion, served, changed = promote_and_serve(
            registry, client, name, version=config.version, alias=settings.model_alias
        )
    else:
        gate = _latest_metadata(context, EVALUATION)
        if gate.get("decision") == APPROVED and gate.get("model_name") == name:
            promotion, served, changed = PromotionGate(registry, client, settings).apply_version(
                name, gate["challenger_version"]
            )
        elif gate.get("champion_version"):
            context.log.info(f"the gate kept the champion: {gate.get('reason', '')}")
            # Serve the alias where it points now: a promotion made since the gate ran stands, never undone.
            current = registry.resolve(ModelRef(name, alias=settings.model_alias)).version
            promotion, served, changed = promote_and_serve(
                registry, client, name, version=current, alias=settings.model_alias
            )
        else:
            raise ConfigError("challenger_evaluation approved no challenger and there is no champion to serve")
    state = "now serves" if changed else "already served"
    context.log.info(f"MLFlask {state} {promotion.ref.uri} (version {promotion.version}, run {promotion.run_id})")
    return dg.MaterializeResult(
        metadata={
            "model_name": promotion.name,
            "version": dg.MetadataValue.int(int(promotion.version)),
            "alias": promotion.alias,
            "model_uri": promotion.ref.uri,
            "run_id": promotion.run_id,
            "mlflask": dg.MetadataValue.url(f"{client.base_url}/models/{promotion.name}"),
            "changed": changed,
            "backend": str(served.get("backend", "")),
        },
        data_version=dg.DataVersion(f"{promotion.name}/{promotion.version}"),
    )


def _latest_metadata(context, key: dg.AssetKey) -> dict:
    event = context.instance.get_latest_materialization_event(key)
    if not event or not event.asset_materialization:
        return {}
    return {k: v.value for k, v in event.asset_materialization.metadata.items()}


def deployed_name(context, mlflow: MLflowResource) -> str:
    """The model name of the latest champion_deployment (this run's, when it made one); else MODEL_NAME."""
    event = context.instance.get_latest_materialization_event(DEPLOYMENT)
    if event and event.asset_materialization and "model_name" in event.asset_materialization.metadata:
        return event.asset_materialization.metadata["model_name"].value
    return mlflow.settings().model_name


def served_predictions(
    context: dg.AssetExecutionContext, config: PredictionsConfig, mlflow: MLflowResource, mlflask: MLFlaskResource
):
    """Job 5: INPUT_TEXTS POSTed to the deployed model; the answers as a table (the behavioural checks are
    champion_deployment's asset checks)."""
    texts = config.texts or texts_to_check(mlflask.input_texts)
    name = deployed_name(context, mlflow)
    response = check_interface(mlflask.client(), name, texts, behaviour=False).response
    rows = [
        dg.TableRecord({"text": text, "label": p["label"], "score": round(float(p["score"]), 4)})
        for text, p in zip(texts, response["predictions"], strict=True)
    ]
    table = predictions_table(texts, response["predictions"])
    context.log.info(f"{name} (version {response.get('version', '?')}):\n{table}")
    schema = dg.TableSchema(
        columns=[dg.TableColumn("text", "string"), dg.TableColumn("label", "string"), dg.TableColumn("score", "float")]
    )
    return dg.MaterializeResult(
        metadata={
            "model_name": name,
            "version": str(response.get("version", "")),
            "predictions": dg.MetadataValue.table(rows, schema=schema),
            "dagster/row_count": len(rows),
        }
    )


def batch_predictions(context: dg.AssetExecutionContext, config: BatchPredictionsConfig, mlflow: MLflowResource):
    """Batch scoring: a lake dataset (clean/ test, or incoming/) scored by the model an alias names, published as
    the lake's predictions/."""

    settings = mlflow.settings(**overrides(config, include={"model_name"}))
    outcome = score_dataset(settings, Registry(settings), config.alias, config.stage, config.split)
    manifest = outcome.manifest
    frame_rows = manifest["files"]["predictions"]["rows"]
    context.log.info(f"predictions/ now holds {frame_rows} rows scored by {manifest['source']}")
    return dg.MaterializeResult(
        metadata={
            "lake": dg.MetadataValue.path(f"{mlflow.lake.open().location}/predictions"),
            "generation": manifest["generation"],
            "model": manifest["model_uri"],
            "version": manifest["model_version"],
            "backend": manifest["backend"],
            "rows_per_second": dg.MetadataValue.float(round(outcome.rows_per_second, 1)),
            "dagster/row_count": frame_rows,
        },
        data_version=dg.DataVersion(manifest_digest(manifest)),
    )


def model_monitoring(context: dg.AssetExecutionContext, config: ModelMonitoringConfig, mlflow: MLflowResource):
    """Drift and live quality: a window of the prediction log and the latest batch predictions against the
    champion's training data (PSI, KS, chi-square); a report logged to MLflow against the champion's version."""

    settings = mlflow.settings(**overrides(config, include={"model_name"}))
    end = _parse_time(config.end) if config.end else None
    report = monitor(settings, Registry(settings), end=end, hours=config.window_hours)
    context.log.info(f"{report.model_name} v{report.version}: {report.status} {'; '.join(report.alerts)}")
    metadata = {
        "status": report.status,
        "alerts": dg.MetadataValue.json(report.alerts),
        "window": f"{report.start.isoformat(timespec='minutes')} to {report.end.isoformat(timespec='minutes')}",
        "model": f"models:/{report.model_name}/{report.version}",
        "rows_by_source": dg.MetadataValue.json(report.sources),
        **{k: dg.MetadataValue.float(float(v)) for k, v in sorted(report.metrics.items()) if v is not None},
    }
    if report.png:
        image = base64.b64encode(report.png).decode()
        metadata["plots"] = dg.MetadataValue.md(f"![reference against the window](data:image/png;base64,{image})")
    if report.mlflow_run_id:
        registry = mlflow.registry()
        experiment = registry.client.get_run(report.mlflow_run_id).info.experiment_id
        metadata["report"] = dg.MetadataValue.url(registry.run_url(experiment, report.mlflow_run_id))
    return dg.MaterializeResult(metadata=metadata)


def _parse_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"end={value!r} is not an ISO time such as 2026-11-29T06:00") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


ASSETS = [
    (raw_reviews, [], "data_preparation"),
    (clean_reviews, [raw_reviews], "clean_data"),
    (finetuned_model, [clean_reviews], "finetune"),
    (challenger_evaluation, [finetuned_model], "model_deployment"),
    (champion_deployment, [challenger_evaluation], "model_deployment"),
    (served_predictions, [champion_deployment], "interface_handler"),
    (batch_predictions, [clean_reviews, champion_deployment], "batch_predictions"),
    (model_monitoring, [batch_predictions], "model_monitoring"),
]
PIPELINE_ASSETS = [fn.__name__ for fn, _, _ in ASSETS[:6]]  # the five jobs; scoring and monitoring run apart
KINDS = {
    "raw_reviews": {"parquet"},
    "clean_reviews": {"parquet"},
    "finetuned_model": {"mlflow", "pytorch"},
    "challenger_evaluation": {"mlflow", "flask"},
    "champion_deployment": {"mlflow", "flask"},
    "served_predictions": {"flask"},
    "batch_predictions": {"parquet", "mlflow"},
    "model_monitoring": {"mlflow", "scipy"},
}
STEP_OF = {fn.__name__: step for fn, _, step in ASSETS}
CHECK_SPECS = {  # checks an asset reports itself, from what it measured
    "challenger_evaluation": [
        dg.AssetCheckSpec(
            "challenger_behaviour",
            asset="challenger_evaluation",
            blocking=True,
            description="job 5's behavioural checks on the staged challenger: a failure stops the alias move",
        )
    ]
}


def build_assets(retry: dg.RetryPolicy) -> list[dg.AssetsDefinition]:
    """The asset definitions, with this retry policy on every one."""
    return [
        dg.asset(
            name=fn.__name__,
            deps=[dep.__name__ for dep in deps],
            group_name=GROUP,
            retry_policy=retry,
            kinds=KINDS[fn.__name__],
            description=inspect.cleandoc(fn.__doc__ or ""),
            tags={"job": step},
            check_specs=CHECK_SPECS.get(fn.__name__),
        )(fn)
        for fn, deps, step in ASSETS
    ]
