"""When the pipeline runs by itself: a weekly retraining, a daily monitoring run, a sensor on the raw manifest,
and a sensor that asks for retraining on drift or new data. All are off until someone turns them on in the UI
(or in code with default_status), so loading the definitions never trains."""

import json

import dagster as dg

from mlplatform.data.lake import manifest_digest, read_manifest
from mlplatform.monitoring.retraining import drift_reason, new_rows_reason
from mlplatform.orchestration.assets import PIPELINE_ASSETS
from mlplatform.orchestration.resources import LakeResource, MLflowResource

PIPELINE = dg.define_asset_job(
    "pipeline", selection=dg.AssetSelection.assets(*PIPELINE_ASSETS), description="the five jobs in order"
)
CLEAN_ON_NEW_RAW = dg.define_asset_job(
    "clean_on_new_raw", selection=dg.AssetSelection.assets("clean_reviews"), description="job 2 after a new raw/"
)
RETRAINING = dg.define_asset_job(
    "retraining",
    selection=dg.AssetSelection.assets(*PIPELINE_ASSETS[1:5]),  # clean_reviews to champion_deployment
    description="clean -> finetune -> challenger evaluation -> gated promotion",
)
BATCH_SCORING = dg.define_asset_job(
    "batch_scoring", selection=dg.AssetSelection.assets("batch_predictions"), description="score a lake dataset"
)
MONITORING = dg.define_asset_job(
    "monitoring", selection=dg.AssetSelection.assets("model_monitoring"), description="drift and live quality"
)
JOBS = [PIPELINE, CLEAN_ON_NEW_RAW, RETRAINING, BATCH_SCORING, MONITORING]


def weekly_retraining(cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="weekly_retraining",
        job=PIPELINE,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="the whole pipeline (RETRAIN_CRON); data steps skip when their input has not changed",
    )


daily_monitoring = dg.ScheduleDefinition(
    name="daily_monitoring",
    job=MONITORING,
    cron_schedule="0 6 * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="model_monitoring over the last MONITORING_WINDOW_HOURS, every day at 06:00",
)


@dg.sensor(job=CLEAN_ON_NEW_RAW, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED)
def raw_manifest_changed(context: dg.SensorEvaluationContext, lake: LakeResource):
    """Starts clean_reviews when raw/'s manifest changes (a new source, or a job 1 run outside Dagster)."""
    manifest = read_manifest(lake.open(), "raw")
    if manifest is None:
        return dg.SkipReason("raw/ holds nothing yet")
    digest = manifest_digest(manifest)
    if digest == context.cursor:
        return dg.SkipReason(f"raw/ unchanged ({manifest['source']})")
    context.update_cursor(digest)
    return dg.RunRequest(run_key=digest, tags={"raw_source": manifest["source"]})


@dg.sensor(job=RETRAINING, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED)
def retrain_on_drift_or_new_data(context: dg.SensorEvaluationContext, mlflow: MLflowResource):
    """Asks for clean -> finetune -> challenger evaluation -> gated promotion when the latest model_monitoring run
    drifted past DRIFT_THRESHOLD, or raw/ holds RETRAIN_MIN_NEW_ROWS labelled rows the champion has not seen.
    The gate decides whether the new model replaces the champion. Each drifted window and each raw/ generation
    asks once; the run's tags say why."""

    settings, registry = mlflow.settings(), mlflow.registry()
    handled = json.loads(context.cursor) if context.cursor else {}
    reasons = [drift_reason(settings, registry), new_rows_reason(settings, registry, mlflow.lake.open())]
    fresh = [r for r in reasons if r is not None and handled.get(r.kind) != r.key]
    if not fresh:
        return dg.SkipReason("no drift past DRIFT_THRESHOLD and too few new labelled rows, or already acted on")
    context.update_cursor(json.dumps({**handled, **{r.kind: r.key for r in fresh}}))
    reason = fresh[0]
    tags = {**reason.tags, **({"retrain_also": fresh[1].detail[:400]} if len(fresh) > 1 else {})}
    return dg.RunRequest(run_key=f"{reason.kind}-{reason.key}", tags=tags)
