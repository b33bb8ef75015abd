"""What MLDash needs from the platform, through the shared package only: runs from MLflow, the MLFlask client."""

from __future__ import annotations

from dataclasses import dataclass

from mlplatform import runs, tracking
from mlplatform.client import MLFlaskClient
from mlplatform.settings import Settings


@dataclass
class Backend:
    settings: Settings
    client: MLFlaskClient

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Backend:
        settings = settings or Settings.from_env()
        return cls(settings, MLFlaskClient.from_settings(settings, timeout=30, retries=2))

    def metric_names(self) -> list[str]:
        return runs.metric_names(self.settings)

    def top_runs(self, metric: str, limit: int = 5) -> list[runs.RunSummary]:
        return runs.top_runs(self.settings, metric, limit)

    def histories(self, run_ids: list[str], metric: str) -> dict[str, list[tuple[int, float]]]:
        return runs.metric_histories(self.settings, run_ids, metric)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return tracking.run_url(self.settings, experiment_id, run_id)
