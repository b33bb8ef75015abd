"""Model monitoring: one window of the prediction log (and the latest batch predictions) against the champion's
training data, with drift metrics, live quality from feedback, a report, and an MLflow run.

The reference is a fixed sample of the clean/ train generation the champion was trained on, scored by the
champion itself; it is computed once per champion version and kept in the lake (`monitoring/reference/`).
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlplatform.data import lake
from mlplatform.data.storage import Storage, open_storage
from mlplatform.errors import PlatformError
from mlplatform.monitoring import drift, predlog
from mlplatform.monitoring.history import EXPERIMENT_SUFFIX, KIND
from mlplatform.monitoring.report import render_html, render_png
from mlplatform.names import ModelRef
from mlplatform.registry.tracking import mlflow_errors
from mlplatform.serving.loader import load_servable
from mlplatform.settings import Settings

log = logging.getLogger(__name__)
FEEDBACK_LOOKBACK = timedelta(days=30)  # feedback may come long after the prediction it is about


@dataclass
class MonitoringReport:
    model_name: str
    version: str
    run_id: str
    start: datetime
    end: datetime
    threshold: float
    metrics: dict[str, float] = field(default_factory=dict)
    alerts: list[str] = field(default_factory=list)
    sources: dict[str, int] = field(default_factory=dict)  # rows per source: log, batch
    status: str = "ok"  # ok | drift | too_few_rows
    mlflow_run_id: str | None = None
    png: bytes | None = None  # the distributions, reference against the window

    @property
    def drift_score(self) -> float | None:
        return self.metrics.get("drift_score")


def monitor(
    settings: Settings,
    registry,
    end: datetime | None = None,
    hours: float | None = None,
    log_to_mlflow: bool = True,
) -> MonitoringReport:
    """Monitor the window of `hours` (MONITORING_WINDOW_HOURS) that ends at `end` (now)."""
    end = (end or datetime.now(UTC)).astimezone(UTC)
    start = end - timedelta(hours=hours or settings.monitoring_window_hours)
    champion = registry.resolve(ModelRef(settings.model_name, alias=settings.model_alias))
    storage = open_storage(settings)
    report = MonitoringReport(
        settings.model_name, champion.version, champion.run_id, start, end, settings.drift_threshold
    )
    reference, labels = reference_profile(settings, registry, storage, champion)
    logged = predlog.read(storage, predlog.LOG_STAGE, start, end)
    logged = logged[logged["model"] == settings.model_name]
    batch = _batch_predictions(storage, settings.model_name, start, end)
    report.sources = {"log": len(logged), "batch": len(batch)}
    current = drift.Profile(
        np.concatenate([logged["tokens"].to_numpy(float), batch["tokens"].to_numpy(float)]),
        np.concatenate([logged["score"].to_numpy(float), batch["score"].to_numpy(float)]),
        [*logged["label"].astype(str), *batch["label"].astype(str)],
        logged["text"].dropna().astype(str).tolist(),
    )
    feedback = predlog.read(storage, predlog.FEEDBACK_STAGE, start, end)
    if len(feedback):
        history = predlog.read(storage, predlog.LOG_STAGE, start - FEEDBACK_LOOKBACK, end)
        report.metrics.update(drift.live_quality(predlog.with_feedback(history, feedback)))
    if current.rows < settings.monitoring_min_rows:
        report.status = "too_few_rows"
        report.metrics["rows"] = float(current.rows)
    else:
        report.metrics.update(drift.compare(reference, current, labels))
        report.metrics["drift_score"] = drift.drift_score(report.metrics)
        report.alerts = drift.alerts(report.metrics, settings.drift_threshold)
        report.status = "drift" if report.alerts else "ok"
    log.info(
        "monitoring %s v%s, %s to %s: %s rows (log %d, batch %d), %s",
        report.model_name,
        report.version,
        start.isoformat(timespec="minutes"),
        end.isoformat(timespec="minutes"),
        current.rows,
        len(logged),
        len(batch),
        "; ".join(report.alerts) or report.status,
    )
    report.png = render_png(reference, current, labels, report)
    if log_to_mlflow:
        _log_to_mlflow(registry, report)
    return report


def _batch_predictions(storage: Storage, model_name: str, start: datetime, end: datetime) -> pd.DataFrame:
    """The current predictions/ dataset, if the model was `model_name` and it was published in the window."""
    empty = pd.DataFrame({"tokens": [], "score": [], "label": []})
    manifest = lake.read_manifest(storage, "predictions")
    if not manifest or not manifest.get("model_uri", "").startswith(f"models:/{model_name}@"):
        return empty
    if not start <= datetime.fromisoformat(manifest["created_at"]) < end:
        return empty
    return lake.read_dataset(storage, "predictions")[1]["predictions"]


def reference_profile(settings: Settings, registry, storage: Storage, champion) -> tuple[drift.Profile, list[str]]:
    """(the champion's reference profile, its label names), from the lake's cache or computed now."""
    key = f"monitoring/reference/{settings.model_name}-v{champion.version}"
    cached, labels_json = storage.get(f"{key}.parquet"), storage.get(f"{key}.json")
    if cached is None or labels_json is None:
        frame, labels = _score_reference(settings, registry, storage, champion)
        buffer = io.BytesIO()
        frame.to_parquet(buffer, index=False)
        storage.put(f"{key}.parquet", buffer.getvalue())
        storage.put(f"{key}.json", json.dumps({"labels": labels, "run_id": champion.run_id}).encode())
    else:
        frame, labels = pd.read_parquet(io.BytesIO(cached)), json.loads(labels_json)["labels"]
    profile = drift.Profile(
        frame["tokens"].to_numpy(float), frame["score"].to_numpy(float), frame["label"].tolist(), frame["text"].tolist()
    )
    return profile, labels


def _score_reference(settings: Settings, registry, storage: Storage, champion) -> tuple[pd.DataFrame, list[str]]:
    generation = registry.client.get_run(champion.run_id).data.tags.get("dataset_generation")
    try:
        _, frames = lake.read_dataset(storage, "clean", generation)
    except PlatformError as exc:
        log.warning("the champion's training data (clean/ %s) is gone (%s); current clean/ stands in", generation, exc)
        _, frames = lake.read_dataset(storage, "clean")
    train = frames["train"]
    train = train.sample(min(len(train), settings.monitoring_reference_rows), random_state=settings.seed)
    texts = train["text"].tolist()
    with mlflow_errors("MLflow"):
        servable = load_servable(champion.version_uri, settings)
    answers = servable.predict(texts)
    tokens = servable.count_tokens(texts)
    scores, labels = [a["score"] for a in answers], [a["label"] for a in answers]
    frame = pd.DataFrame({"text": texts, "tokens": tokens, "score": scores, "label": labels})
    return frame, servable.labels


def _log_to_mlflow(registry, report: MonitoringReport) -> None:
    """One run per window in `<MLFLOW_EXP_NAME>-monitoring`, its metrics linked to the champion's logged model."""
    client = registry.client
    with mlflow_errors("MLflow"):
        experiment_id = registry.ensure_experiment(EXPERIMENT_SUFFIX)
        run = client.create_run(
            experiment_id,
            run_name=f"{report.model_name} v{report.version} {report.end:%Y-%m-%d %H:%M}",
            tags={
                "mlplatform.kind": KIND,
                "model_name": report.model_name,
                "model_version": report.version,
                "window_start": report.start.isoformat(),
                "window_end": report.end.isoformat(),
                "status": report.status,
                "alerts": "; ".join(report.alerts),
            },
        )
        run_id = run.info.run_id
        model_id = registry.logged_model_id(report.run_id)
        step = int(report.end.timestamp())
        for key, value in report.metrics.items():
            if value is not None and np.isfinite(value):
                client.log_metric(run_id, key, float(value), step=step, model_id=model_id)
        client.log_param(run_id, "drift_threshold", report.threshold)
        client.log_param(run_id, "rows_log", report.sources.get("log", 0))
        client.log_param(run_id, "rows_batch", report.sources.get("batch", 0))
        with tempfile.TemporaryDirectory(prefix="monitoring-report-") as tmp:
            (Path(tmp) / "drift.png").write_bytes(report.png)
            (Path(tmp) / "report.html").write_text(render_html(report, report.png))
            client.log_artifacts(run_id, tmp)
        client.set_terminated(run_id)
        client.set_model_version_tag(report.model_name, report.version, "monitoring.last_run", run_id)
        client.set_model_version_tag(report.model_name, report.version, "monitoring.status", report.status)
    report.mlflow_run_id = run_id
