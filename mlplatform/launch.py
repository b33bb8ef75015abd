"""Starting a service as a subprocess and waiting for its health URL: the demo, the pipeline runner (its local
MLFlask), the benchmarks and the tests all start servers this way.

Each service is its own process group, so stopping it stops its workers and children too.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from mlplatform.errors import PlatformError


class ServiceError(PlatformError):
    """A service exited, or did not answer its health URL in time."""


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(url: str, process: subprocess.Popen | None = None, timeout: float = 120, what: str = "") -> None:
    """Poll `url` until it answers 200; fail when `process` exits first or `timeout` passes (a bounded loop)."""
    import requests

    what = what or url
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServiceError(f"{what} exited with {process.returncode} before {url} answered")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise ServiceError(f"{what} did not answer {url} within {timeout:.0f}s")


def stop(process: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 30) -> None:
    """Signal the process group (SIGINT: what gunicorn, `dagster dev` and mlflow stop on quickly), then kill it."""
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout)


class Service:
    """A server command, started in its own process group, healthy once `health_url` answers 200."""

    def __init__(
        self,
        name: str,
        argv: list[str],
        health_url: str,
        env: dict[str, str] | None = None,
        log: str | Path | None = None,
        cwd: str | Path | None = None,
    ):
        self.name, self.argv, self.health_url = name, argv, health_url
        self.env, self.log, self.cwd = env, Path(log) if log else None, cwd
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> Service:
        output = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 - the child keeps it
        self.process = subprocess.Popen(
            self.argv, env=self.env, cwd=self.cwd, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        if self.log:
            output.close()
        try:
            wait_until_healthy(self.health_url, self.process, timeout, what=self.name)
        except ServiceError as exc:
            self.stop()
            raise ServiceError(f"{exc}{f'; see {self.log}' if self.log else ''}") from None
        except BaseException:  # interrupted while it starts (Ctrl-C, kill): the caller never got it to stop
            self.stop()
            raise
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30) -> None:
        if self.process is not None:
            stop(self.process, sig, timeout)

    def __enter__(self) -> Service:
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()
