"""Dagster resources: the lake, MLflow and MLFlask, built from the same settings as the CLI jobs.

They hold no configuration of their own: the environment (and so `env/*.env`, compose, Kubernetes secrets) stays
the one place it is set, and a launchpad run reads it at run time, like a job started from a shell.
"""

from __future__ import annotations

import dagster as dg

from mlplatform.data.storage import Storage, open_storage
from mlplatform.registry import tracking
from mlplatform.serving.client import MLFlaskClient
from mlplatform.settings import Settings


class LakeResource(dg.ConfigurableResource):
    """The data lake: LAKE_DIR, or s3://AWS_BUCKET/LAKE_PREFIX, opened exactly as jobs 1 and 2 open it."""

    def open(self) -> Storage:
        return open_storage(Settings.from_env())


class MLflowResource(dg.ConfigurableResource):
    """The tracking server (MLFLOWSERVER_URL) or the embedded store, and its UI for links."""

    def settings(self, **overrides) -> Settings:
        return Settings.from_env(**overrides)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return tracking.run_url(Settings.from_env(), experiment_id, run_id)


class MLFlaskResource(dg.ConfigurableResource):
    """MLFlask at MLFLASK_URL, with MLFLASK_TOKEN when set."""

    def client(self) -> MLFlaskClient:
        return MLFlaskClient.from_settings(Settings.from_env())
