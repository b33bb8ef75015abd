"""Job 3, fine-tune: train a pretrained BERT-family model on the lake's `clean/` reviews and log it all to MLflow.

Tracking: MLFLOWSERVER_URL when set, else the embedded MLFLOW_BACKEND_STORE_URI (sqlite), with artifacts under
MLFLOW_DEFAULT_ARTIFACTORY_ROOT (default ./mlartifacts, or s3://$AWS_BUCKET/mlartifacts). Experiment: MLFLOW_EXP_NAME.

Rerun with other hyperparameters and compare the runs in the MLflow UI, e.g.
  python jobs/finetune.py --learning-rate 3e-5 --epochs 2
A rerun with the same hyperparameters on the same dataset does nothing and says so (--force retrains).
Ctrl-C marks the run KILLED; a crash marks it FAILED.
"""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

from mlplatform import cli
from mlplatform.settings import Settings
from mlplatform.training.config import TrainConfig

log = logging.getLogger("finetune")


def _parser(settings: Settings):
    p = cli.parser(__doc__)
    for name in TrainConfig.model_fields:
        cli.flag(p, "--" + name.replace("_", "-"), name, settings)
    cli.flag(p, "--dataset-generation", "dataset_generation", settings)
    p.add_argument(
        "--force", action="store_true", help="train even if a FINISHED run has these exact hyperparameters and dataset"
    )
    return p


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (docker stop, kill) ends the MLflow run as KILLED, like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    settings, args = cli.start(Path(__file__).stem, _parser, argv)
    settings = settings.replace(dataset_generation=args.dataset_generation)  # to reproduce a registered version
    config = TrainConfig.of(args)

    def job() -> int:
        from mlplatform.training.finetune import run_finetune

        result = run_finetune(settings, config, force=args.force)
        if result.skipped:
            log.info("nothing to do: run %s already has these hyperparameters on this dataset", result.run_id)
            return 0
        scores = ", ".join(f"{k}={v:.4f}" for k, v in result.metrics.items() if k not in ("epoch", "step"))
        log.info(
            "run %s (%s) finished: %s; %.1f train samples/s",
            result.run_id,
            config.run_name,
            scores,
            result.samples_per_second,
        )
        return 0

    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        return cli.run(job, Path(__file__).stem)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
