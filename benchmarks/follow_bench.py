"""Alias following: seconds from moving `@champion` in the registry to every MLFlask replica serving the new version.

Starts a real `mlflow server`, fine-tunes two quick runs of the default model (two registered versions), then two
replicas started as the README does (`python -m apps.mlflask`, own stores, MLFLASK_DEPLOYMENTS), and moves the
alias back and forth with the MLflow client. Reported per follow interval: median and worst time to the last
replica, and the part of it that is work (download, load, smoke test) rather than waiting for the next tick.

Usage: python benchmarks/follow_bench.py [--intervals 5 30] [--moves 3] [--replicas 2]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_bench import _start  # noqa: E402

from mlplatform.launch import Service, free_port  # noqa: E402

NAME = "bench-movie"


def _mlflow_server(tmp: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{tmp}/mlflow.db", "--artifacts-destination", f"{tmp}/artifacts"]
    url = f"http://127.0.0.1:{port}"
    return Service("mlflow server", command, f"{url}/health").start(timeout=180).process, url


def _two_versions(tmp: str, url: str) -> None:
    from mlplatform.data.dataprep import clean_raw, prepare_raw
    from mlplatform.data.sources import SourceOptions
    from mlplatform.data.storage import open_storage
    from mlplatform.registry import Registry
    from mlplatform.settings import Settings
    from mlplatform.training.config import TrainConfig
    from mlplatform.training.finetune import run_finetune

    settings = Settings.from_mapping({"LAKE_DIR": f"{tmp}/lake", "MLFLOWSERVER_URL": url, "MLFLOW_EXP_NAME": "follow"})
    storage = open_storage(settings)
    prepare_raw(storage, "sample:1000", SourceOptions())
    clean_raw(storage)
    for learning_rate in (5e-5, 3e-5):
        config = TrainConfig(learning_rate=learning_rate, train_samples=300, test_samples=100, max_length=32)
        Registry(settings).promote(NAME, run_id=run_finetune(settings, config).run_id)


def _version(url: str) -> str | None:
    try:
        return requests.get(f"{url}/models/{NAME}", timeout=5).json().get("version")
    except (requests.RequestException, ValueError):
        return None


def _measure(mlflow_url: str, urls: list[str], moves: int, interval: float) -> list[tuple[float, float]]:
    """[(seconds to the last replica, seconds of which were work)] for `moves` alias moves."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_url)
    results = []
    for move in range(moves):
        time.sleep(random.uniform(0, interval))  # a move lands anywhere between two ticks
        target = "1" if _version(urls[0]) == "2" else "2"
        client.set_registered_model_alias(NAME, "champion", target)
        moved = time.monotonic()
        first_seen: dict[str, float] = {}
        while len(first_seen) < len(urls) and time.monotonic() - moved < 300:  # bounded
            for url in urls:
                if url not in first_seen and _version(url) == target:
                    first_seen[url] = time.monotonic() - moved
            time.sleep(0.05)
        if len(first_seen) < len(urls):
            raise TimeoutError(f"move {move + 1}: not every replica serves version {target}")
        logs = [requests.get(f"{url}/logs?limit=5", timeout=5).json()["logs"] for url in urls]
        results.append((max(first_seen.values()), _work_seconds(logs)))
    return results


def _work_seconds(logs: list[list[dict]]) -> float:
    """The slowest replica's download+load+smoke time, from its follow log entry."""
    return max((e.get("seconds", 0.0) for entries in logs for e in entries if e["action"] == "follow"), default=0.0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--intervals", type=float, nargs="+", default=[5.0, 30.0])
    p.add_argument("--moves", type=int, default=5)
    p.add_argument("--replicas", type=int, default=2)
    args = p.parse_args()
    processes: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory() as tmp:
        server, mlflow_url = _mlflow_server(tmp)
        processes.append(server)
        try:
            _two_versions(tmp, mlflow_url)
            print("| follow interval | moves | to every replica, median | worst | of which work (worst) |")
            print("|---|---|---|---|---|")
            for interval in args.intervals:
                urls = []
                for replica in range(args.replicas):
                    port = free_port()
                    env = {
                        **os.environ,
                        "TQDM_DISABLE": "1",
                        "MLFLOWSERVER_URL": mlflow_url,
                        "MLFLOW_EXP_NAME": "follow",
                        "MLFLASK_PORT": str(port),
                        "MLFLASK_STORE": f"{tmp}/store-{interval}-{replica}",
                        "MLFLASK_FOLLOW_INTERVAL": str(interval),
                        "MLFLASK_DEPLOYMENTS": f"{NAME}=models:/{NAME}@champion",
                    }
                    urls.append(_start(["-m", "apps.mlflask"], env, port, "/health", processes)[1])
                deadline = time.monotonic() + 300
                while not all(_version(u) for u in urls) and time.monotonic() < deadline:
                    time.sleep(0.2)
                results = _measure(mlflow_url, urls, args.moves, interval)
                times = [t for t, _ in results]
                work = max(w for _, w in results)
                print(
                    f"| {interval:g} s | {len(results)} | {statistics.median(times):.1f} s | {max(times):.1f} s "
                    f"| {work:.1f} s |"
                )
                for process in processes[1:]:
                    process.terminate()
                    process.wait(60)
                del processes[1:]
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(60)


if __name__ == "__main__":
    main()
