"""What MLDash needs from the platform, through the shared package only: the registry object, the MLFlask client."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from mlplatform.registry import Registry, RunSummary
from mlplatform.serving.client import MLFlaskClient
from mlplatform.settings import Settings

CONFUSION_MATRIX = "plots/confusion_matrix.png"


@dataclass
class Backend:
    registry: Registry
    client: MLFlaskClient
    deploying: threading.Lock = field(default_factory=threading.Lock)  # one deploy at a time, across tabs
    _figures: dict = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> Backend:
        return cls(Registry(settings), MLFlaskClient.from_settings(settings, timeout=30, retries=2))

    @property
    def settings(self) -> Settings:
        return self.registry.settings

    def metric_names(self) -> list[str]:
        return self.registry.metric_names()

    def runs(self, metric: str, limit: int = 200) -> list[RunSummary]:
        """The experiment's FINISHED runs with `metric`, best first."""
        return self.registry.top_runs(metric, limit)

    def confusion_matrix_png(self, run_id: str) -> bytes | None:
        """The run's test confusion matrix, as logged by job 3 (cached: a run's artifacts do not change)."""
        if run_id not in self._figures:
            with tempfile.TemporaryDirectory() as folder:
                try:
                    uri = f"runs:/{run_id}/{CONFUSION_MATRIX}"
                    path = self.registry.download(uri, folder, "MLflow artifacts", missing="")
                    self._figures[run_id] = Path(path).read_bytes()
                except OSError:
                    self._figures[run_id] = None
        return self._figures[run_id]

    def histories(self, run_ids: list[str], metric: str) -> dict[str, list[tuple[int, float]]]:
        return self.registry.metric_histories(run_ids, metric)

    def run_url(self, experiment_id: str, run_id: str) -> str:
        return self.registry.run_url(experiment_id, run_id)
