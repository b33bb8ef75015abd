"""Training past one process, and sweeps (issue #25), on the same real rows (../shared/data/rt-polarity-dev.csv):

1. job 3 in one process against `torchrun --nproc_per_node=2 -m jobs.finetune` (gloo), as users launch them,
   with the same global batch (32 = 2 x 16): train samples/s, wall time and test accuracy;
2. a 6-trial sweep (`jobs/finetune.py --sweep 6`) with the median pruner against the same 6 without it
   (`--no-prune`): wall time, trials pruned and the best validation score.

Usage: python benchmarks/scale_bench.py [--train-samples 2000] [--trials 6] [--skip-ddp] [--skip-sweep]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
JOB = ["-m", "jobs.finetune"]
REAL_SENTENCES = REPO.parent / "shared" / "data" / "rt-polarity-dev.csv"
SPACE = """
learning_rate: {low: 1.0e-5, high: 2.0e-4, log: true}
batch_size: {choices: [16, 32]}
warmup_ratio: {low: 0.0, high: 0.2}
weight_decay: {low: 0.0, high: 0.1}
epochs: {low: 1, high: 2}
"""


def _run(command: list[str], env: dict, label: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"{label} failed:\n{done.stderr[-3000:]}")
    return seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--train-samples", type=int, default=2000)
    p.add_argument("--trials", type=int, default=6)
    p.add_argument("--skip-ddp", action="store_true")
    p.add_argument("--skip-sweep", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "TQDM_DISABLE": "1",
            "LAKE_DIR": f"{tmp}/lake",
            "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp}/mlflow.db",
            "MLFLOW_DEFAULT_ARTIFACTORY_ROOT": Path(tmp, "artifacts").as_uri(),
            "MLFLOW_EXP_NAME": "scale-bench",
            "DATA_SOURCE": f"csv:{REAL_SENTENCES}",
            "TEST_FRACTION": "0.25",
            "TRAIN_SAMPLES": str(args.train_samples),
            "TEST_SAMPLES": "0",
            "MAX_LENGTH": "64",
            "ONNX_EXPORT": "none",
            "DEPLOY_METRIC": "val_accuracy",
        }
        for job in ("data_preparation", "clean_data"):
            _run([sys.executable, f"jobs/{job}.py"], env, job)
        if not args.skip_ddp:
            ddp(env, tmp)
        if not args.skip_sweep:
            sweep(env, tmp, args.trials)


def ddp(env: dict, tmp: str) -> None:
    import mlflow

    rows = []
    for label, command, batch in (
        ("1 process (2 threads)", [sys.executable, "jobs/finetune.py"], 32),
        (
            "torchrun, 2 processes (1 thread each)",
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                "--nproc_per_node=2",
                "-m",
                "jobs.finetune",
            ],
            16,
        ),
    ):
        result = Path(tmp, f"result-{batch}.json")
        seconds = _run(
            [*command, "--batch-size", str(batch), "--force", "--result-json", str(result)],
            {**env, **({"OMP_NUM_THREADS": "1"} if batch == 16 else {})},
            label,
        )
        data = json.loads(result.read_text())
        mlflow.set_tracking_uri(env["MLFLOW_BACKEND_STORE_URI"])
        run = mlflow.get_run(data["run_id"])
        rows.append((label, data["samples_per_second"], seconds, run.data.metrics["test_accuracy"], run.data.params))
    print(f"\nrt-polarity, {env['TRAIN_SAMPLES']} training rows, 1 epoch, max_length 64, global batch 32")
    print("| launch | train samples/s | wall s (whole job) | test accuracy | world_size |\n|---|---|---|---|---|")
    for label, speed, seconds, accuracy, params in rows:
        print(f"| {label} | {speed:.1f} | {seconds:.0f} | {accuracy:.4f} | {params['world_size']} |")
    print(f"ratio 2 processes / 1 process, samples/s: {rows[1][1] / rows[0][1]:.2f}")


def sweep(env: dict, tmp: str, trials: int) -> None:
    space = Path(tmp, "space.yaml")
    space.write_text(SPACE)
    rows = []
    for label, extra in (("median pruner", []), ("no pruning", ["--no-prune"])):
        storage = f"sqlite:///{tmp}/optuna-{len(rows)}.db"
        command = [sys.executable, "jobs/finetune.py", "--sweep", str(trials), "--space", str(space), *extra]
        started = time.perf_counter()
        done = subprocess.run(command, env={**env, "SWEEP_STORAGE": storage}, cwd=REPO, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            sys.exit(f"sweep ({label}) failed:\n{done.stderr[-3000:]}")
        import optuna

        study = optuna.load_study(study_name=optuna.get_all_study_names(storage)[0], storage=storage)
        pruned = sum(t.state.name == "PRUNED" for t in study.trials)
        rows.append((label, seconds, pruned, study.best_value))
    print(f"\nsweep of {trials} trials, {env['TRAIN_SAMPLES']} training rows, space: {SPACE.strip()!r}")
    print("| sweep | wall s | trials pruned | best val_accuracy |\n|---|---|---|---|")
    for label, seconds, pruned, best in rows:
        print(f"| {label} | {seconds:.0f} | {pruned} | {best:.4f} |")
    print(f"ratio wall time pruned / unpruned: {rows[0][1] / rows[1][1]:.2f}")


if __name__ == "__main__":
    main()
