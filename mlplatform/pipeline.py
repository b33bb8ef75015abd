"""The pipeline runner's logic: the five jobs in order, each its own process, with retries and a summary."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from mlplatform.client import MLFlaskClient
from mlplatform.errors import ConfigError
from mlplatform.settings import Settings

REPO = Path(__file__).resolve().parents[1]
STEPS = ["data_preparation", "clean_data", "finetune", "model_deployment", "interface_handler"]
# Retrying is safe where a rerun converges on the same state; a retried fine-tune would train from scratch.
RETRYABLE = {"data_preparation", "clean_data", "model_deployment", "interface_handler"}
NEEDS_MLFLASK = {"model_deployment", "interface_handler"}


@dataclass
class StepResult:
    name: str
    returncode: int
    seconds: float
    attempts: int
    last_error: str = ""


def select_steps(start: str | None = None, only: str | None = None) -> list[str]:
    for flag, value in (("--from", start), ("--only", only)):
        if value is not None and value not in STEPS:
            raise ConfigError(f"{flag} {value!r} is not a step; choose one of: {', '.join(STEPS)}")
    if only:
        return [only]
    return STEPS[STEPS.index(start) :] if start else list(STEPS)


def run_step(name: str, env: dict[str, str], retries: int, echo=print) -> StepResult:
    """Run `python jobs/<name>.py`, streaming its output; retry with backoff where that is safe."""
    attempts = 1 + (retries if name in RETRYABLE else 0)
    start = time.monotonic()
    for attempt in range(1, attempts + 1):
        process = subprocess.Popen(
            [sys.executable, str(REPO / "jobs" / f"{name}.py")],
            env=env,
            cwd=os.getcwd(),
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _, stderr = process.communicate()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            process.wait(60)
            raise
        sys.stderr.write(stderr)
        errors = [line for line in stderr.splitlines() if f"{name}: error:" in line or f"{name}: interrupted" in line]
        last_error = errors[-1] if errors else (stderr.strip().splitlines() or [""])[-1]
        if process.returncode == 0 or attempt == attempts:
            return StepResult(name, process.returncode, time.monotonic() - start, attempt, last_error)
        delay = 2**attempt
        echo(f"   {name} failed (exit {process.returncode}); retry {attempt}/{attempts - 1} in {delay}s")
        time.sleep(delay)
    raise AssertionError("unreachable")


class LocalMLFlask:
    """An MLFlask started by the runner when nothing answers at MLFLASK_URL, stopped when the runner ends."""

    def __init__(self, settings: Settings, env: dict[str, str]):
        url = settings.mlflask_url
        parsed = urlparse(url)
        if parsed.hostname not in ("127.0.0.1", "localhost"):
            raise ConfigError(f"nothing answers at MLFLASK_URL={url}, and only a local URL can be started here")
        self.url = url
        self._env = {**env, "MLFLASK_HOST": "127.0.0.1", "MLFLASK_PORT": str(parsed.port or 80)}
        self.process: subprocess.Popen | None = None
        self.log_path = settings.mlflask_log

    def start(self, timeout: float = 120) -> None:
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "apps.mlflask"],
            env=self._env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        client = MLFlaskClient(self.url, timeout=2, retries=1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ConfigError(f"the local MLFlask exited with {self.process.returncode}; see {self.log_path}")
            if client.health():
                return
            time.sleep(0.5)
        self.stop()
        raise ConfigError(f"the local MLFlask did not answer within {timeout:.0f}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
