"""Memory under redeploys: the workers' RSS after each of 50 redeploys of one name. Targets (issue #21): the last
reading at most 1.2x the first, and the last 10 readings within 3% of each other (a plateau, not a slow climb).

A real `mlflow server`, two registered versions of a quick fine-tune of the default model, and MLFlask started as
the README does (`python -m apps.mlflask`, its default worker count; the RSS is the sum over its workers). Each
redeploy alternates the pinned version, so every one downloads and loads a model and retires the previous one.

Usage: python benchmarks/memory_bench.py [--redeploys 50]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import requests

sys.path.insert(0, str(Path(__file__).resolve().parent))
from follow_bench import NAME, _mlflow_server, _two_versions  # noqa: E402
from serve_bench import _start  # noqa: E402

from mlplatform.launch import free_port  # noqa: E402


def _worker_rss(master: subprocess.Popen) -> int:
    workers = psutil.Process(master.pid).children()
    return sum(worker.memory_info().rss for worker in workers)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redeploys", type=int, default=50)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        server, mlflow_url = _mlflow_server(tmp)
        mlflask = None
        try:
            _two_versions(tmp, mlflow_url)
            port = free_port()
            env = {
                **os.environ,
                "TQDM_DISABLE": "1",
                "MLFLOWSERVER_URL": mlflow_url,
                "MLFLOW_EXP_NAME": "follow",
                "MLFLASK_PORT": str(port),
                "MLFLASK_STORE": f"{tmp}/store",
                "MLFLASK_FOLLOW_INTERVAL": "0",
            }
            mlflask, url = _start(["-m", "apps.mlflask"], env, port, "/health", [])
            readings = []
            for i in range(args.redeploys):
                body = {"name": "memory", "model_uri": f"models:/{NAME}/{1 + i % 2}"}
                requests.post(f"{url}/models", json=body, timeout=600).raise_for_status()
                for _ in range(20):  # use it, so the batcher and the tokenizer caches are warm
                    requests.post(f"{url}/predict", json={"model": "memory", "texts": ["A fine film."]}, timeout=60)
                readings.append(_worker_rss(mlflask))
            first, last, tail = readings[0], readings[-1], readings[-10:]
            print("| redeploys | RSS, first | RSS, last | last/first (<= 1.2) | last 10 spread (<= 3%) |")
            print("|---|---|---|---|---|")
            spread = (max(tail) - min(tail)) / min(tail)
            print(
                f"| {args.redeploys} | {first / 2**20:.0f} MiB | {last / 2**20:.0f} MiB | {last / first:.2f} "
                f"| {spread:.1%} |"
            )
            print("every reading (MiB):", " ".join(f"{r / 2**20:.0f}" for r in readings))
        finally:
            for process in (mlflask, server):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(60)


if __name__ == "__main__":
    main()
