"""When the pipeline runs by itself: a weekly retraining and a sensor on the raw manifest. Both are off until
someone turns them on in the UI (or in code with default_status), so loading the definitions never trains."""

import dagster as dg

from mlplatform.data.lake import manifest_digest, read_manifest
from mlplatform.orchestration.resources import LakeResource

PIPELINE = dg.define_asset_job("pipeline", selection=dg.AssetSelection.all(), description="the five jobs in order")
CLEAN_ON_NEW_RAW = dg.define_asset_job(
    "clean_on_new_raw", selection=dg.AssetSelection.assets("clean_reviews"), description="job 2 after a new raw/"
)


def weekly_retraining(cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="weekly_retraining",
        job=PIPELINE,
        cron_schedule=cron,
        default_status=dg.DefaultScheduleStatus.STOPPED,
        description="the whole pipeline (RETRAIN_CRON); data steps skip when their input has not changed",
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
