"""The platform on Dagster: `dagster dev -m mlplatform.orchestration` and `dagster definitions validate -m ...`.

Assets (assets.py), their checks (checks.py), launchpad config (config.py), resources (resources.py), and the
schedule and sensor (automation.py). `jobs/run_pipeline.py` executes the same `pipeline` job in process.
"""

from __future__ import annotations

import dagster as dg

from mlplatform.orchestration.assets import build_assets
from mlplatform.orchestration.automation import (
    JOBS,
    daily_monitoring,
    raw_manifest_changed,
    retrain_on_drift_or_new_data,
    weekly_retraining,
)
from mlplatform.orchestration.checks import CHECKS
from mlplatform.orchestration.resources import from_settings
from mlplatform.settings import Settings


def retry_policy(retries: int) -> dg.RetryPolicy:
    return dg.RetryPolicy(max_retries=retries, delay=2, backoff=dg.Backoff.EXPONENTIAL)


def build_definitions(settings: Settings, retries: int | None = None) -> dg.Definitions:
    """The definitions, with resources filled from `settings` (read once, by the caller)."""
    return dg.Definitions(
        assets=build_assets(retry_policy(settings.pipeline_retries if retries is None else retries)),
        asset_checks=CHECKS,
        jobs=JOBS,
        schedules=[weekly_retraining(settings.retrain_cron), daily_monitoring],
        sensors=[raw_manifest_changed, retrain_on_drift_or_new_data],
        resources=from_settings(settings),
    )


@dg.definitions
def defs() -> dg.Definitions:
    """`dagster dev -m mlplatform.orchestration`'s entry point: the settings are read here, when Dagster loads the
    code, not when the package is imported (the CLI runner imports it with settings of its own)."""
    return build_definitions(Settings.load())
