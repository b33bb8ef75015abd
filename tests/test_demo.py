"""`make demo` (the README's first command) stops everything it started when make itself is killed (#22)."""

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers.services import PLATFORM_VARS, env_without, free_port, wait_for_http

pytestmark = pytest.mark.live  # make demo starts every service

REPO = Path(__file__).resolve().parents[1]


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_killing_make_during_the_demo_stops_its_services(tmp_path):
    port = free_port()
    env = {
        # a user's own `make`, not a sub-make of `make test` (whose jobserver and MAKEFLAGS it would inherit)
        **env_without(*PLATFORM_VARS, "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKE_TERMOUT", "MAKE_TERMERR"),
        "VENV": str(Path(os.environ.get("VIRTUAL_ENV") or REPO / ".venv")),
        "MLFLASK_PORT": str(port),
        "MLFLASK_URL": f"http://127.0.0.1:{port}",
        "MLFLASK_STORE": str(tmp_path / "store"),
        "LAKE_DIR": str(tmp_path / "lake"),
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{tmp_path / 'mlflow.db'}",
        "MLFLOW_DEFAULT_ARTIFACTORY_ROOT": str(tmp_path / "artifacts"),
        "DAGSTER_HOME": str(tmp_path / "dagster"),
    }
    # -o install: the venv is already in step with the lock here (make test installed it)
    make = subprocess.Popen(["make", "-o", "install", "demo"], cwd=REPO, env=env, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/health", make, timeout=120)
        os.kill(make.pid, signal.SIGTERM)  # make does not pass it on: the demo must notice its parent died
        make.wait(30)
        deadline = time.monotonic() + 75  # the demo gives a service 30 s to stop before it kills it
        while _port_open(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _port_open(port), "MLFlask still holds its port after make was killed"
        deadline = time.monotonic() + 30
        while _demo_processes(port) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _demo_processes(port) == [], "the demo or one of its services outlived make"
    finally:
        for pid in _demo_processes(port) + ([make.pid] if make.poll() is None else []):
            os.kill(pid, signal.SIGKILL)


def _demo_processes(port: int) -> list[int]:
    """Processes whose environment carries this test's MLFlask port: the demo and everything it started."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            if f"MLFLASK_PORT={port}".encode() in (proc / "environ").read_bytes().split(b"\0"):
                found.append(int(proc.name))
        except OSError:
            continue
    return [pid for pid in found if pid != os.getpid()]
