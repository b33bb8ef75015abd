"""Dagster resources: the lake, MLflow and MLFlask, each holding its part of the settings as fields.

`build_definitions(settings)` fills the fields from the one `Settings` read at the entry point, so the launchpad
shows them; secrets that came from the environment are given as `dg.EnvVar`, so Dagster shows the variable's name,
never its value. Assets get their settings from these resources, never from the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import dagster as dg
from pydantic import Field, create_model

from mlplatform.data.storage import open_storage
from mlplatform.orchestration.inputs import LaunchpadLimits
from mlplatform.registry import Registry
from mlplatform.serving.client import MLFlaskClient
from mlplatform.settings import Settings
from mlplatform.training.config import TrainConfig

LAKE_FIELDS = (
    "aws_region_name aws_bucket aws_access_key_id aws_secret_access_key aws_endpoint_url lake_dir lake_prefix "
    "data_cache_dir data_source imdb_url test_fraction seed label_balance_min"
).split()
MLFLOW_FIELDS = [
    *"mlflow_backend_store_uri mlflow_default_artifactory_root mlflowserver_url mlflow_exp_name mlflow_ui_url".split(),
    *"mlflow_tracking_username mlflow_tracking_password".split(),
    *"git_commit onnx_export deploy_metric model_name model_alias".split(),
    *"drift_threshold monitoring_window_hours monitoring_min_rows monitoring_reference_rows".split(),
    *"retrain_min_new_rows mlflask_backend mlflask_quantize mlflask_max_batch torch_num_threads sweep_storage".split(),
    *(name for name in TrainConfig.model_fields if name != "seed"),
]
MLFLASK_FIELDS = ["mlflask_url", "mlflask_token", "input_texts"]


def _config_type(annotation: Any) -> Any:
    """The field's type as Dagster config takes it: paths and literals as strings, all optional."""
    union = get_origin(annotation) is not Literal and get_args(annotation)
    kind = next(arg for arg in get_args(annotation) if arg is not type(None)) if union else annotation
    if kind is Path or get_origin(kind) is Literal:
        kind = str
    return kind | None


def _fields(names: list[str]) -> dict:
    return {
        name: (
            _config_type(Settings.model_fields[name].annotation),
            Field(None, description=f"{Settings.model_fields[name].description} [{name.upper()}]"),
        )
        for name in names
    }


class _SettingsPart(dg.ConfigurableResource):
    def values(self) -> dict:
        return {k: v for k, v in self.model_dump().items() if v is not None and not isinstance(v, dict)}


def _part(name: str, doc: str, names: list[str], **extra) -> type:
    return create_model(name, __base__=_SettingsPart, __doc__=doc, **_fields(names), **extra)


_LakeFields = _part("_LakeFields", "The lake's fields.", LAKE_FIELDS)
_MLflowFields = _part("_MLflowFields", "MLflow's fields.", MLFLOW_FIELDS)
_MLFlaskFields = _part("_MLFlaskFields", "MLFlask's fields.", MLFLASK_FIELDS)


class LakeResource(_LakeFields):
    """The data lake: LAKE_DIR, or s3://AWS_BUCKET/LAKE_PREFIX, opened exactly as jobs 1 and 2 open it."""

    def settings(self, **overrides) -> Settings:
        return Settings.from_mapping({**self.values(), **overrides})

    def open(self):

        return open_storage(self.settings())


class MLflowResource(_MLflowFields):
    """The tracking server (MLFLOWSERVER_URL) or the embedded store; S3 artifacts use the lake's endpoint and keys."""

    lake: LakeResource

    def settings(self, **overrides) -> Settings:
        return Settings.from_mapping({**self.lake.values(), **self.values(), **overrides})

    def registry(self, **overrides):

        return Registry(self.settings(**overrides))


class MLFlaskResource(_MLFlaskFields):
    """MLFlask at MLFLASK_URL, with MLFLASK_TOKEN when set."""

    def client(self) -> MLFlaskClient:
        return MLFlaskClient.from_settings(Settings.from_mapping(self.values()))


def from_settings(settings: Settings) -> dict:
    """The three resources, filled from `settings`, and the launchpad's limits."""

    def fields(names: list[str]) -> dict:
        values = {}
        for name in names:
            value = getattr(settings, name)
            if value is None or name not in settings.model_fields_set:
                continue
            secret = not Settings.model_fields[name].repr
            values[name] = dg.EnvVar(name.upper()) if secret and settings.from_environment(name) else _plain(value)
        return values

    lake = LakeResource(**fields(LAKE_FIELDS))
    return {
        "lake": lake,
        "mlflow": MLflowResource(lake=lake, **fields(MLFLOW_FIELDS)),
        "mlflask": MLFlaskResource(**fields(MLFLASK_FIELDS)),
        "launchpad_limits": LaunchpadLimits.from_settings(settings),  # a plain object: no config to override
    }


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value
