"""Job 3 on several processes from Python (Dagster's finetuned_model with nproc > 1): `torchrun` runs
`jobs.finetune` with this process's settings as its environment, and rank 0 hands back the run it made."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from mlplatform.errors import PlatformError
from mlplatform.settings import Settings
from mlplatform.training.config import TrainConfig
from mlplatform.training.finetune import FinetuneResult

REPO = Path(__file__).resolve().parents[2]


def torchrun_command(nproc: int, result_file: Path, force: bool) -> list[str]:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    command += ["-m", "jobs.finetune", "--result-json", str(result_file)]
    return command + (["--force"] if force else [])


def run_torchrun(settings: Settings, config: TrainConfig, nproc: int, force: bool = False) -> FinetuneResult:
    """Train on `nproc` data-parallel processes; their output goes to this process's stdout and stderr."""
    hyperparameters = {name.upper(): str(value) for name, value in config.params().items()}
    with tempfile.TemporaryDirectory(prefix="torchrun-") as tmp:
        result_file = Path(tmp) / "result.json"
        done = subprocess.run(
            torchrun_command(nproc, result_file, force),
            env=settings.child_environ(**hyperparameters),
            cwd=REPO,
            check=False,
        )
        if done.returncode != 0 or not result_file.is_file():
            raise PlatformError(
                f"torchrun --nproc_per_node={nproc} failed (exit code {done.returncode}); the step's output names "
                "the rank that failed, and its MLflow run is marked FAILED"
            )
        return FinetuneResult(**json.loads(result_file.read_text()))
