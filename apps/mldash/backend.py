"""What MLDash needs from the platform, through the shared package only: runs from MLflow, the MLFlask client."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from mlplatform.registry import runs, tracking
from mlplatform.serving.client import MLFlaskClient
from mlplatform.settings import Settings

CONFUSION_MATRIX = "plots/confusion_matrix.png"


@dataclass
class Backend:
    settings: Settings
    client: MLFlaskClient
    deploying: threading.Lock = field(default_factory=threading.Lock)  # one deploy at a time, across tabs
    _figures: dict = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> Backend:
        settings = settings or Settings.from_env()
        return cls(settings, MLFlaskClient.from_settings(settings, timeout=30, retries=2))

    def metric_names(self) -> list[str]:
        return runs.metric_names(self.settings)

    def runs(self, metric: str, limit: int = 200) -> list[runs.RunSummary]:
        """The experiment's FINISHED runs with `metric`, best first."""
        return runs.top_runs(self.settings, metric, limit)

    def confusion_matrix_png(self, run_id: str) -> bytes | None:
        """The run's test confusion matrix, as logged by job 3 (cached: a run's artifacts do not change)."""
        if run_id not in self._figures:
            import mlflow

            with tempfile.TemporaryDirectory() as folder, tracking.mlflow_errors("MLflow artifacts", missing=""):
                try:
                    path = mlflow.artifacts.download_artifacts(
                        run_id=run_id,
                        artifact_path=CONFUSION_MATRIX,
                        dst_path=folder,
                        tracking_uri=tracking.configure(self.settings),
                    )
                    self._figures[run_id] = Path(path).read_bytes()
                except OSError:
                    self._figures[run_id] = None
        return self._figures[run_id]

    def histories(self, run_ids: list[str], metric: str) -> dict[str, list[tuple[int, float]]]:
        return runs.metric_histories(self.settings, run_ids, metric)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return tracking.run_url(self.settings, experiment_id, run_id)
