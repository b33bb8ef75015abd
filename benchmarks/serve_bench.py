"""Serving speed: the same fine-tuned default model three ways, in one run.

1. in-process `Predictor` forward (the limit)
2. MLFlask under gunicorn (1 worker, gthread, micro-batching), fp32 and MLFLASK_QUANTIZE=1
3. `mlflow models serve` of the same MLflow model (--env-manager local, 1 worker)

Measured: p50/p99 latency of one request with the four default sentences (sequential), and throughput of
one-sentence requests from 8 concurrent clients. Targets: MLFlask p50 <= 1.1x in-process and <= 0.55x
MLflow; throughput >= 2.5x MLflow in fp32 and >= 4x with int8.

Usage: python benchmarks/serve_bench.py [--requests 50] [--concurrent-requests 400] [--run-id ID --tracking-uri URI]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from mlplatform.behaviour import OBVIOUS_NEGATIVE, OBVIOUS_POSITIVE, SAMPLE_TEXTS

REPO = Path(__file__).resolve().parents[1]
ONE_SENTENCES = SAMPLE_TEXTS + OBVIOUS_POSITIVE + OBVIOUS_NEGATIVE


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server for {url} exited with {process.returncode}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(url)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]


def _latency(call, n: int) -> tuple[float, float]:
    for _ in range(5):
        call(SAMPLE_TEXTS)
    times = []
    for _ in range(n):
        start = time.perf_counter()
        call(SAMPLE_TEXTS)
        times.append(time.perf_counter() - start)
    return _percentiles(times)


def _throughput(call, total: int, clients: int = 8) -> float:
    texts = [[ONE_SENTENCES[i % len(ONE_SENTENCES)]] for i in range(total)]
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(call, texts[: clients * 2]))  # warm-up
        start = time.perf_counter()
        list(pool.map(call, texts))
    return total / (time.perf_counter() - start)


def _measure(call, args) -> tuple[float, float, float]:
    """(p50, p99, req/s) for one way of serving."""
    return (*_latency(call, args.requests), _throughput(call, args.concurrent_requests))


def _start(command: list[str], env: dict, port: int, health: str, processes: list) -> tuple[subprocess.Popen, str]:
    """Start a server (`python <command>`) quietly, wait until `health` answers; return (process, URL)."""
    process = subprocess.Popen(
        [sys.executable, *command], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    processes.append(process)
    url = f"http://127.0.0.1:{port}"
    _wait(url + health, process)
    return process, url


def _train(tmp: str) -> tuple[str, str]:
    from mlplatform.dataprep import clean_raw, prepare_raw
    from mlplatform.finetune import run_finetune
    from mlplatform.settings import Settings
    from mlplatform.sources import SourceOptions
    from mlplatform.storage import open_storage
    from mlplatform.trainconfig import TrainConfig

    uri = f"sqlite:///{tmp}/mlflow.db"
    settings = Settings.from_env(
        {
            "LAKE_DIR": f"{tmp}/lake",
            "MLFLOW_BACKEND_STORE_URI": uri,
            "MLFLOW_DEFAULT_ARTIFACTORY_ROOT": Path(tmp, "artifacts").as_uri(),
            "MLFLOW_EXP_NAME": "serve-bench",
        }
    )
    storage = open_storage(settings)
    prepare_raw(storage, "sample:2000", SourceOptions())
    clean_raw(storage)
    result = run_finetune(settings, TrainConfig(train_samples=1000, test_samples=300, max_length=64))
    return result.run_id, uri


def _post_json(url: str):
    session = requests.Session()

    def call(body):
        response = session.post(url, json=body, timeout=120)
        response.raise_for_status()
        return response.json()

    return call


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=50, help="sequential requests for p50/p99")
    p.add_argument("--concurrent-requests", type=int, default=400, help="one-sentence requests for throughput")
    p.add_argument("--run-id")
    p.add_argument("--tracking-uri")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("TQDM_DISABLE", "1")
    processes = []
    with tempfile.TemporaryDirectory() as tmp:
        import mlflow

        run_id, uri = (args.run_id, args.tracking_uri) if args.run_id else _train(tmp)
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.get_experiment(mlflow.get_run(run_id).info.experiment_id).name  # MLFlask deploys from it
        env = {**os.environ, "MLFLOW_BACKEND_STORE_URI": uri, "MLFLOW_TRACKING_URI": uri, "MLFLOW_EXP_NAME": experiment}
        results = {}
        try:
            from mlplatform.predictor import Predictor

            local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=f"{tmp}/model")
            predictor = Predictor(local)
            results["in-process forward"] = _measure(predictor.predict, args)

            for label, extra in (("MLFlask fp32", {}), ("MLFlask int8", {"MLFLASK_QUANTIZE": "1"})):
                port = _free_port()
                command = [
                    "-m",
                    "gunicorn",
                    "-w",
                    "1",
                    "-k",
                    "gthread",
                    "--threads",
                    "8",
                    "-b",
                    f"127.0.0.1:{port}",
                    "--graceful-timeout",
                    "5",
                    "apps.mlflask.wsgi:app",
                ]
                server_env = {**env, **extra, "MLFLASK_STORE": f"{tmp}/store-{port}"}
                process, url = _start(command, server_env, port, "/health", processes)
                requests.post(url + "/models", json={"name": "bench", "run_id": run_id}, timeout=300).raise_for_status()
                predict = _post_json(url + "/predict")
                results[label] = _measure(lambda t, predict=predict: predict({"model": "bench", "texts": t}), args)
                process.terminate()
                process.wait(60)

            port = _free_port()
            command = [
                "-m",
                "mlflow",
                "models",
                "serve",
                "-m",
                f"runs:/{run_id}/model",
                "-p",
                str(port),
                "-h",
                "127.0.0.1",
                "--env-manager",
                "local",
                "-w",
                "1",
            ]
            _, url = _start(command, env, port, "/ping", processes)
            invoke = _post_json(url + "/invocations")
            results["mlflow models serve"] = _measure(lambda t: invoke({"inputs": t}), args)
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(60)

    print(f"{'':22}{'p50 ms':>9}{'p99 ms':>9}{'req/s (8 clients)':>19}")
    for label, (p50, p99, rps) in results.items():
        print(f"{label:22}{p50 * 1000:>9.1f}{p99 * 1000:>9.1f}{rps:>19.1f}")
    inproc, fp32, int8, mlf = (
        results[k] for k in ("in-process forward", "MLFlask fp32", "MLFlask int8", "mlflow models serve")
    )
    print(f"MLFlask p50 / in-process p50:   {fp32[0] / inproc[0]:.2f}  (target <= 1.1)")
    print(f"MLFlask p50 / MLflow p50:       {fp32[0] / mlf[0]:.2f}  (target <= 0.55)")
    print(f"MLFlask fp32 / MLflow req/s:    {fp32[2] / mlf[2]:.2f}  (target >= 2.5)")
    print(f"MLFlask int8 / MLflow req/s:    {int8[2] / mlf[2]:.2f}  (target >= 4)")


if __name__ == "__main__":
    main()
