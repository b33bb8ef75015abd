"""The pipeline runner's logic: the five jobs in order, each its own process, with retries and a summary."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from urllib.parse import urlparse

from mlplatform.client import MLFlaskClient
from mlplatform.errors import ConfigError
from mlplatform.settings import Settings

PROGRESS_SECONDS = 10  # how often a progress bar prints a line when the output is not a terminal
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
    """Run `python -m jobs.<name>`, its output shown live; retry with backoff where that is safe."""
    attempts = 1 + (retries if name in RETRYABLE else 0)
    start = time.monotonic()
    for attempt in range(1, attempts + 1):
        returncode, tail = _run_live([sys.executable, "-m", f"jobs.{name}"], env)
        errors = [line for line in tail if f"{name}: error:" in line or f"{name}: interrupted" in line]
        last_error = errors[-1] if errors else (tail[-1] if tail else "")
        if returncode == 0 or attempt == attempts:
            return StepResult(name, returncode, time.monotonic() - start, attempt, last_error)
        delay = 2**attempt
        echo(f"   {name} failed (exit {returncode}); retry {attempt}/{attempts - 1} in {delay}s")
        time.sleep(delay)
    raise AssertionError("unreachable")


def _run_live(command: list[str], env: dict[str, str]) -> tuple[int, list[str]]:
    """Run `command` with its output shown as it comes; return (exit code, its last stderr lines).

    On a terminal the child keeps it, so progress bars redraw in place. Elsewhere (CI, a pipe, a log file) its
    stderr is read here and progress bars become one plain line every PROGRESS_SECONDS.
    """
    child_env = {**env, "PYTHONUNBUFFERED": "1"}
    if sys.stderr.isatty():
        process = subprocess.Popen(command, env=child_env)
        return _wait(process), []
    child_env.setdefault("TQDM_MININTERVAL", str(PROGRESS_SECONDS))
    process = subprocess.Popen(command, env=child_env, stderr=subprocess.PIPE)
    tail: deque[str] = deque(maxlen=50)
    pending = b""
    try:
        while chunk := os.read(process.stderr.fileno(), 65536):
            *lines, pending = re.split(rb"[\r\n]", pending + chunk)
            for raw in lines:
                line = raw.decode("utf-8", "replace").rstrip()
                if line:
                    sys.stderr.write(line + "\n")
                    sys.stderr.flush()
                    tail.append(line)
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        process.wait(60)
        raise
    if pending.strip():
        tail.append(pending.decode("utf-8", "replace").rstrip())
        sys.stderr.write(tail[-1] + "\n")
    return _wait(process), list(tail)


def _wait(process: subprocess.Popen) -> int:
    try:
        return process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        process.wait(60)
        raise


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
