"""Monitoring's settings: declared here, beside the monitoring code; `Settings` inherits them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from mlplatform.fields import setting


class MonitoringConfig(BaseModel):
    """How model monitoring reads a window and when the retraining sensor asks for a run."""

    model_config = ConfigDict(frozen=True)

    monitoring_window_hours: float = setting(24, "hours of the prediction log one model_monitoring run reads", gt=0)
    monitoring_min_rows: int = setting(100, "fewer predictions in a window than this: no drift verdict", ge=1)
    monitoring_reference_rows: int = setting(
        2000, "rows of the champion's training data scored once per version as the reference", ge=50
    )
    drift_threshold: float = setting(
        0.25, "PSI above which a drift measure raises an alert and the retraining sensor asks for a run", gt=0
    )
    retrain_min_new_rows: int = setting(
        1000, "labelled raw/ rows the champion was not trained on that make the retraining sensor ask for a run", ge=1
    )
