"""Launchpad config: the jobs' flags as Dagster config classes.

Every field left empty falls back to the resources' value (from the `Settings` read at the entry point), so a
launch with no config is the CLI job with no flags, and
`learning_rate: 3e-5` is `mlplatform-finetune --learning-rate 3e-5`.
Values are checked by the same rules as the variables, and a bad one names it.
"""

from __future__ import annotations

from typing import Literal

import dagster as dg
from pydantic import Field, create_model

from mlplatform.settings import Settings
from mlplatform.training.config import TrainConfig


def _from_resource(name: str):
    """An optional field described by its settings field: what it does, and what an empty value means."""
    setting = Settings.model_fields[name]
    default = "unset" if setting.default is None else repr(setting.default)
    return Field(None, description=f"{setting.description}. Empty: the resource's {name.upper()} (default {default})")


class RawReviewsConfig(dg.Config):
    """Job 1's flags."""

    source: str | None = _from_resource("data_source")
    imdb_url: str | None = _from_resource("imdb_url")
    test_fraction: float | None = _from_resource("test_fraction")
    seed: int | None = _from_resource("seed")
    force: bool = Field(False, description="rewrite raw/ even if it already holds this source")


class CleanReviewsConfig(dg.Config):
    """Job 2's flags."""

    force: bool = Field(False, description="rewrite clean/ even if it is up to date with raw/")


# Job 3's flags are TrainConfig's fields: generated, so a new hyperparameter reaches the launchpad by itself.
FinetuneConfig = create_model(
    "FinetuneConfig",
    __base__=dg.Config,
    __doc__="Job 3's hyperparameters (empty = the mlflow resource's).",
    force=(bool, Field(False, description="train even if a FINISHED run has these hyperparameters and dataset")),
    nproc=(int, Field(1, ge=1, le=64, description="processes training data-parallel (torchrun above 1)")),
    sweep=(int, Field(0, ge=0, le=1000, description="run this many Optuna trials instead of one run (0: one run)")),
    space=(str | None, Field(None, description="YAML or JSON file overriding the sweep's search space")),
    **{name: (field.annotation | None, _from_resource(name)) for name, field in TrainConfig.model_fields.items()},
)


class ChallengerConfig(dg.Config):
    """Job 4's gate: the best runs by `metric` (or the run given) against the champion on the same data."""

    metric: str | None = _from_resource("deploy_metric")
    model_name: str | None = _from_resource("model_name")
    alias: str | None = _from_resource("model_alias")
    run_id: str | None = Field(None, description="make this run the challenger instead of the best one")
    force: bool = Field(False, description="skip the gain and real-over-synthetic rules (the checks still run)")


class DeploymentConfig(dg.Config):
    """Job 4's alias move: to the challenger the gate approved in this run, or to a version (rollback)."""

    model_name: str | None = _from_resource("model_name")
    alias: str | None = _from_resource("model_alias")
    version: int | None = Field(None, description="point the alias at this registered version (rollback, no gate)")


class PredictionsConfig(dg.Config):
    """Job 5's texts."""

    texts: list[str] | None = Field(None, description="texts to POST; empty: INPUT_TEXTS, else the four samples")


class BatchPredictionsConfig(dg.Config):
    """Batch scoring's flags (jobs/batch_predictions.py)."""

    model_name: str | None = _from_resource("model_name")
    alias: str | None = _from_resource("model_alias")
    stage: Literal["clean", "raw", "incoming"] = Field("clean", description="lake dataset to score")
    split: str | None = Field(None, description="train or test (clean, raw), rows (incoming); empty: test/rows")


class ModelMonitoringConfig(dg.Config):
    """The window model monitoring reads (jobs/model_monitoring.py)."""

    model_name: str | None = _from_resource("model_name")
    window_hours: float | None = _from_resource("monitoring_window_hours")
    end: str | None = Field(None, description="ISO time the window ends at (UTC if no offset); empty: now")


def overrides(config: dg.Config, exclude: set[str] = frozenset(), include: set[str] | None = None) -> dict:
    """The fields that were filled in, as settings overrides (field names are the settings' names)."""
    return {
        k: v
        for k, v in config.model_dump().items()
        if v is not None and k not in exclude and (include is None or k in include)
    }
