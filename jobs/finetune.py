"""Job 3, fine-tune: train a pretrained BERT-family model on the lake's `clean/` reviews and log it all to MLflow.

Tracking: MLFLOWSERVER_URL when set, else the embedded MLFLOW_BACKEND_STORE_URI (sqlite), with artifacts under
MLFLOW_DEFAULT_ARTIFACTORY_ROOT (default ./mlartifacts, or s3://$AWS_BUCKET/mlartifacts). Experiment: MLFLOW_EXP_NAME.

Rerun with other hyperparameters and compare the runs in the MLflow UI, e.g.
  python jobs/finetune.py --learning-rate 3e-5 --epochs 2
A rerun with the same hyperparameters on the same dataset does nothing and says so (--force retrains).
Ctrl-C marks the run KILLED; a crash marks it FAILED.

Data-parallel on N processes (gloo on CPU, NCCL on GPUs; BATCH_SIZE is per process), one MLflow run from rank 0:
  torchrun --nproc_per_node=N -m jobs.finetune --batch-size 32
  accelerate launch --num_processes N -m jobs.finetune --batch-size 32
A rank that fails stops the launch, and the run ends FAILED.

Sweep: --sweep N runs N trials with Optuna (learning rate, batch size, warm-up, weight decay, epochs; see
SEARCH_SPACE in mlplatform/training/config.py, --space to override), each a child run under one parent run, with
hopeless trials pruned at their evaluations. Rerunning the same command resumes a killed sweep (SWEEP_STORAGE).
"""

from __future__ import annotations

import dataclasses
import json
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
    p.add_argument(
        "--sweep",
        type=int,
        default=0,
        metavar="N",
        help="run N trials with Optuna over the search space (child runs under one parent run); rerun to resume",
    )
    p.add_argument("--space", help="YAML or JSON file overriding entries of the search space (with --sweep)")
    p.add_argument("--no-prune", action="store_true", help="with --sweep: run every trial to its end")
    p.add_argument("--result-json", help="write the run's id and metrics to this file (rank 0; for launchers)")
    return p


def _sweep(settings: Settings, config: TrainConfig, args) -> int:
    from mlplatform.training.sweep import load_space, run_sweep

    result = run_sweep(settings, config, args.sweep, load_space(args.space), prune=not args.no_prune)
    print(
        f"sweep {result.study_name}: {result.trials_done} trials done ({result.pruned} pruned), {result.trials_run} "
        f"run now; parent run {result.parent_run_id}"
    )
    if result.best_run_id:
        print(f"best: run {result.best_run_id}, {settings.deploy_metric}={result.best_value:.4f}, {result.best_params}")
    return 0


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (docker stop, kill) ends the MLflow run as KILLED, like Ctrl-C


def _raise_launch_stopped(signum, frame):
    from mlplatform.training.distributed import LaunchStopped

    raise LaunchStopped  # torchrun stops the other ranks when one fails: the run ends FAILED, not KILLED


def main(argv: list[str] | None = None) -> int:
    settings, args = cli.start(Path(__file__).stem, _parser, argv)
    settings = settings.replace(dataset_generation=args.dataset_generation)  # to reproduce a registered version
    config = TrainConfig.of(args)

    def job() -> int:
        from mlplatform.training.finetune import run_finetune

        if args.sweep:
            return _sweep(settings, config, args)
        result = run_finetune(settings, config, force=args.force)
        if args.result_json and settings.rank == 0:
            Path(args.result_json).write_text(json.dumps(dataclasses.asdict(result)))
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

    previous = signal.signal(signal.SIGTERM, _raise_launch_stopped if settings.world_size > 1 else _raise_interrupt)
    try:
        return cli.run(job, Path(__file__).stem)
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
