"""Model monitoring: one window of MLFlask's prediction log (and the latest batch predictions) against the
champion's training data.

Input drift (tokens per text, out-of-vocabulary rate, word-frequency shift), prediction drift (label shares,
confidence) and, where POST /feedback sent true labels, live accuracy and F1. Each drift measure is a population
stability index (PSI) with a Kolmogorov-Smirnov or chi-square p-value; a PSI above DRIFT_THRESHOLD is an alert.
The report (metrics, drift.png, report.html) is an MLflow run in <MLFLOW_EXP_NAME>-monitoring, linked to the
champion's version. Exit code 0: no drift, 3: drift, 1: error.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from mlplatform import cli
from mlplatform.monitoring.monitor import monitor
from mlplatform.registry import Registry
from mlplatform.settings import Settings

log = logging.getLogger("model_monitoring")
EXIT_DRIFT = 3


def _time(value: str) -> datetime:
    moment = datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parser(settings: Settings):
    p = cli.parser(__doc__)
    cli.flag(p, "--model-name", "model_name", settings)
    cli.flag(p, "--window-hours", "monitoring_window_hours", settings, dest="hours")
    cli.flag(p, "--threshold", "drift_threshold", settings, dest="threshold")
    p.add_argument("--end", type=_time, help="ISO time the window ends at, e.g. 2026-11-29T06:00 (UTC) [now]")
    p.add_argument("--no-mlflow", action="store_true", help="print the report only; log nothing to MLflow")
    return p


def main(argv: list[str] | None = None) -> int:
    settings, args = cli.start(Path(__file__).stem, _parser, argv)

    def job() -> int:
        job_settings = settings.replace(model_name=args.model_name, drift_threshold=args.threshold)
        report = monitor(
            job_settings, Registry(job_settings), end=args.end, hours=args.hours, log_to_mlflow=not args.no_mlflow
        )
        rows = [[k, f"{v:.4g}"] for k, v in sorted(report.metrics.items()) if v is not None]
        print(cli.table(rows, ["measure", "value"]))
        print(f"status: {report.status}; alerts: {'; '.join(report.alerts) or 'none'}")
        if report.mlflow_run_id:
            print(f"report: MLflow run {report.mlflow_run_id} (drift.png, report.html)")
        return EXIT_DRIFT if report.status == "drift" else 0

    return cli.run(job, Path(__file__).stem)


if __name__ == "__main__":
    sys.exit(main())
