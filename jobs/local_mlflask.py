"""What the pipeline runner needs beside Dagster: the local MLFlask it starts when none answers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from urllib.parse import urlparse

from mlplatform.errors import ConfigError
from mlplatform.serving.client import MLFlaskClient
from mlplatform.settings import Settings

PROGRESS_SECONDS = 10  # how often a progress bar prints a line when the output is not a terminal


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
            # Quick shutdown: the run is over, and a graceful one would wait out this process's keep-alive sockets.
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
