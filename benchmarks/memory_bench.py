"""Memory under redeploys: a worker's RSS after 1 and after 20 redeploys of one name (target: at most 1.2x).

A real `mlflow server`, two registered versions of a quick fine-tune of the default model, and MLFlask started as
the README does (`python -m apps.mlflask`, one worker, so the RSS is that worker's). Each redeploy alternates the
pinned version, so every one downloads and loads a model and retires the previous one.

Usage: python benchmarks/memory_bench.py [--redeploys 20]
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

from apps.launch import free_port  # noqa: E402


def _worker_rss(master: subprocess.Popen) -> int:
    workers = psutil.Process(master.pid).children()
    return sum(worker.memory_info().rss for worker in workers)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--redeploys", type=int, default=20)
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
                "MLFLASK_WORKERS": "1",
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
            first, last = readings[0], readings[-1]
            print("| redeploys | worker RSS after the first | after the last | ratio (target <= 1.2) |")
            print("|---|---|---|---|")
            print(f"| {args.redeploys} | {first / 2**20:.0f} MiB | {last / 2**20:.0f} MiB | {last / first:.2f} |")
            print("every reading (MiB):", " ".join(f"{r / 2**20:.0f}" for r in readings))
        finally:
            for process in (mlflask, server):
                if process is not None and process.poll() is None:
                    process.terminate()
                    process.wait(60)


if __name__ == "__main__":
    main()
