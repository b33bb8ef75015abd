"""Serving speed: the same fine-tuned default model, every way we serve it, in one run.

1. in-process `Predictor` forward, torch fp32 and ONNX Runtime fp32 (the limits)
2. MLFlask as the README starts it (`python -m apps.mlflask`): ONNX fp32 with 1, 2 and 4 workers, ONNX int8 and
   torch fp32 with 1 and 2 workers
3. `mlflow models serve` of the same MLflow model (--env-manager local, 1 worker)

Measured: p50/p99 latency of one request with the four default sentences (sequential), and throughput of
one-sentence requests from 8 concurrent clients, each request on a new connection, and with keep-alive.
Targets (issue #12): ONNX fp32 >= 5x MLflow's throughput and p50 <= 0.35x; int8 >= 8x; MLFlask p50 <= 1.15x the
in-process forward of the same backend; 2 workers >= 1 worker.

Usage: python benchmarks/serve_bench.py [--requests 50] [--concurrent-requests 400] [--run-id ID --tracking-uri URI]

--cold measures as a user meets MLFlask instead (issue #21): `python -m apps.mlflask` as shipped (and with 2 workers,
and int8), job 4 deploying the run, and at once, with no warm-up, 200 one-sentence requests from 8 clients on new
connections; then 400 more once steady, and the 4-sentence p50. `mlflow models serve` and the in-process predictor
are measured with the same clients, and the report gives every ratio issue #21 sets a target for.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import requests

from mlplatform.launch import Service, free_port
from mlplatform.serving.behaviour import OBVIOUS_NEGATIVE, OBVIOUS_POSITIVE, SAMPLE_TEXTS

REPO = Path(__file__).resolve().parents[1]
ONE_SENTENCES = SAMPLE_TEXTS + OBVIOUS_POSITIVE + OBVIOUS_NEGATIVE


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


def _measure(call, args, fresh_call=None) -> tuple[float, float, float, float | None]:
    """(p50, p99, req/s keep-alive, req/s new connections) for one way of serving."""
    fresh = _throughput(fresh_call, args.concurrent_requests) if fresh_call else None
    return (*_latency(call, args.requests), _throughput(call, args.concurrent_requests), fresh)


def _start(command: list[str], env: dict, port: int, health: str, processes: list) -> tuple[subprocess.Popen, str]:
    """Start a server (`python <command>`) quietly, wait until `health` answers; return (process, URL)."""
    # `mlflow models serve` runs `uvicorn` by name: the venv's bin must be on PATH even when it is not activated.
    env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"}
    url = f"http://127.0.0.1:{port}"
    service = Service(command[-1], [sys.executable, *command], url + health, env=env, cwd=REPO).start(timeout=180)
    processes.append(service.process)
    return service.process, url


def _mlflow_serve(run_id: str, env: dict, processes: list) -> tuple[subprocess.Popen, str]:
    """MLflow's own server for the run's model: one worker, the local environment."""
    port = free_port()
    command = ["-m", "mlflow", "models", "serve", "-m", f"runs:/{run_id}/model", "-p", str(port)]
    command += ["-h", "127.0.0.1", "--env-manager", "local", "-w", "1"]
    return _start(command, env, port, "/ping", processes)


def _train(tmp: str, source: str = "sample:2000") -> tuple[str, str]:
    from mlplatform.data.dataprep import clean_raw, prepare_raw
    from mlplatform.data.sources import SourceOptions
    from mlplatform.data.storage import open_storage
    from mlplatform.settings import Settings
    from mlplatform.training.config import TrainConfig
    from mlplatform.training.finetune import run_finetune

    uri = f"sqlite:///{tmp}/mlflow.db"
    settings = Settings.from_mapping(
        {
            "LAKE_DIR": f"{tmp}/lake",
            "MLFLOW_BACKEND_STORE_URI": uri,
            "MLFLOW_DEFAULT_ARTIFACTORY_ROOT": Path(tmp, "artifacts").as_uri(),
            "MLFLOW_EXP_NAME": "serve-bench",
        }
    )
    storage = open_storage(settings)
    prepare_raw(storage, source, SourceOptions())
    clean_raw(storage)
    result = run_finetune(settings, TrainConfig(train_samples=1000, test_samples=300, max_length=64))
    return result.run_id, uri


def _timed_burst(call, total: int, clients: int = 8) -> tuple[float, float]:
    """(p99 seconds, req/s) of `total` one-sentence calls from `clients` threads."""
    texts = [ONE_SENTENCES[i % len(ONE_SENTENCES)] for i in range(total)]

    def timed(text):
        started = time.perf_counter()
        call([text])
        return time.perf_counter() - started

    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        latencies = list(pool.map(timed, texts))
    return _percentiles(latencies)[1], total / (time.perf_counter() - start)


COLD_SERVERS = [  # (label, environment): the shipped default first (MLFLASK_QUANTIZE=auto: int8 if job 3 passed it)
    ("MLFlask as shipped (1 worker)", {}),
    ("MLFlask as shipped, 2 workers", {"MLFLASK_WORKERS": "2"}),
    ("MLFlask fp32 (MLFLASK_QUANTIZE=0), 1 worker", {"MLFLASK_QUANTIZE": "0"}),
    ("MLFlask fp32 (MLFLASK_QUANTIZE=0), 2 workers", {"MLFLASK_QUANTIZE": "0", "MLFLASK_WORKERS": "2"}),
]


def _cold(run_id: str, env: dict, tmp: str, processes: list) -> dict:
    """Per server: the first 200 requests right after job 4's deploy, 200 more in steady state, and the
    4-sentence p50; then `mlflow models serve` and the in-process predictor under the same 8 clients."""
    results = {}
    for label, extra in COLD_SERVERS:
        port = free_port()
        server_env = {**env, **extra, "MLFLASK_PORT": str(port), "MLFLASK_STORE": f"{tmp}/cold-store-{port}"}
        process, url = _start(["-m", "apps.mlflask"], server_env, port, "/health", processes)
        job4 = [sys.executable, "jobs/model_deployment.py", "--run-id", run_id, "--name", "bench"]
        subprocess.run(job4, env={**server_env, "MLFLASK_URL": url}, cwd=REPO, check=True, capture_output=True)
        fresh = _new_connections(url + "/predict")
        call = lambda texts, fresh=fresh: fresh({"model": "bench", "texts": texts})  # noqa: E731
        first, steady = _timed_burst(call, 200), _timed_burst(call, 400)
        served = json.loads(urllib.request.urlopen(url + "/models/bench", timeout=10).read())  # noqa: S310
        label = f"{label}: {served['backend']}"
        results[label] = (first, steady, _latency(call, 40)[0])
        print(label, results[label], flush=True)  # kept if a later step fails
        process.terminate()
        process.wait(60)
    process, url = _mlflow_serve(run_id, env, processes)
    fresh = _new_connections(url + "/invocations")
    call = lambda texts: fresh({"inputs": texts})  # noqa: E731
    results["mlflow models serve"] = (_timed_burst(call, 100), _timed_burst(call, 200), _latency(call, 20)[0])
    process.terminate()
    process.wait(60)
    results.update(_in_process(run_id, tmp))
    return results


def _in_process(run_id: str, tmp: str) -> dict:
    """The limit: the predictor MLFlask would load, called by the same 8 client threads, no HTTP."""
    import mlflow
    from mlplatform.serving.predictor import Predictor

    local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=f"{tmp}/in-process")
    mlflow.artifacts.download_artifacts(f"runs:/{run_id}/onnx", dst_path=local)
    results = {}
    for label, quantize in (("in-process predictor, ONNX fp32", False), ("in-process predictor, ONNX int8", True)):
        predictor = Predictor(local, backend="onnx", quantize=quantize, threads=len(os.sched_getaffinity(0)))
        burst = _timed_burst(predictor.predict, 400)
        results[label] = (burst, _timed_burst(predictor.predict, 400), _latency(predictor.predict, 40)[0])
    return results


def _report_cold(results: dict) -> None:
    print("| measured as users meet it | first 200: p99 ms | req/s | steady: p99 ms | req/s | 4-sentence p50 ms |")
    print("|---|---|---|---|---|---|")
    for label, ((p99_first, rps_first), (p99_steady, rps_steady), p50) in results.items():
        print(
            f"| {label} | {p99_first * 1000:.1f} | {rps_first:.1f} | {p99_steady * 1000:.1f} | {rps_steady:.1f} "
            f"| {p50 * 1000:.1f} |"
        )
    default, two, fp32, fp32_two = (results[label] for label in results if label.startswith("MLFlask"))
    int8_served = next(label for label in results if label.startswith("MLFlask as shipped (")).endswith("int8")
    mlf = results["mlflow models serve"]
    local, local_int8 = results["in-process predictor, ONNX fp32"], results["in-process predictor, ONNX int8"]
    ratios = [
        ("shipped req/s / MLflow, first 200", default[0][1] / mlf[1][1], ">= 5"),
        ("shipped req/s / MLflow, steady", default[1][1] / mlf[1][1], ">= 5"),
        ("shipped 4-sentence p50 / MLflow", default[2] / mlf[2], "<= 0.35"),
        ("first-200 p99 / steady p99, shipped", default[0][0] / default[1][0], "<= 2"),
        ("first-200 p99 / steady p99, shipped, 2 workers", two[0][0] / two[1][0], "<= 2"),
        ("first-200 p99 / steady p99, fp32", fp32[0][0] / fp32[1][0], "<= 2"),
        ("2 workers / 1 worker req/s, first 200 (shipped)", two[0][1] / default[0][1], ">= 1"),
        ("2 workers / 1 worker req/s, steady (shipped)", two[1][1] / default[1][1], ">= 1"),
        ("2 workers / 1 worker req/s, steady (fp32)", fp32_two[1][1] / fp32[1][1], ">= 1"),
        ("MLFlask / in-process req/s, fp32", fp32[1][1] / local[1][1], ">= 0.85"),
    ]
    if int8_served:
        ratios += [
            ("int8 / fp32 req/s, steady (1 worker)", default[1][1] / fp32[1][1], ">= 1.5"),
            ("int8 req/s / MLflow, steady (best worker count)", max(default[1][1], two[1][1]) / mlf[1][1], ">= 8"),
            ("MLFlask / in-process req/s, int8", default[1][1] / local_int8[1][1], ">= 0.85"),
        ]
    print()
    print("| ratio | value | target |")
    print("|---|---|---|")
    for label, value, target in ratios:
        print(f"| {label} | {value:.2f} | {target} |")


def _new_connections(url: str):
    """A client that opens a new connection per request (http.client: a light client, so on a 2-core machine
    the load generator takes less of the CPU it shares with the server than `requests` would)."""
    parts = urlsplit(url)

    def call(body):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        try:
            headers = {"Content-Type": "application/json", "Connection": "close"}
            connection.request("POST", parts.path, json.dumps(body), headers)
            response = connection.getresponse()
            payload = response.read()
        finally:
            connection.close()
        if response.status != 200:
            raise RuntimeError(f"{url} answered {response.status}: {payload[:200]!r}")
        return json.loads(payload)

    return call


def _post_json(url: str, keep_alive: bool = True):
    """A client: one session per thread (keep-alive), or a new connection per request."""
    local = threading.local()

    def call(body):
        if keep_alive:
            session = getattr(local, "session", None) or requests.Session()
            local.session = session
            response = session.post(url, json=body, timeout=120)
        else:
            response = requests.post(url, json=body, timeout=120, headers={"Connection": "close"})
        response.raise_for_status()
        return response.json()

    return call


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--requests", type=int, default=50, help="sequential requests for p50/p99")
    p.add_argument("--concurrent-requests", type=int, default=400, help="one-sentence requests for throughput")
    p.add_argument("--run-id")
    p.add_argument("--tracking-uri")
    p.add_argument("--cold", action="store_true", help="measure right after a deploy, as users meet it")
    p.add_argument("--source", default="sample:2000", help="job 1's DATA_SOURCE for the model trained here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    processes = []
    with tempfile.TemporaryDirectory() as tmp:
        import mlflow

        run_id, uri = (args.run_id, args.tracking_uri) if args.run_id else _train(tmp, args.source)
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.get_experiment(mlflow.get_run(run_id).info.experiment_id).name  # MLFlask deploys from it
        env = {**os.environ, "TQDM_DISABLE": "1", "MLFLOW_BACKEND_STORE_URI": uri, "MLFLOW_TRACKING_URI": uri}
        env["MLFLOW_EXP_NAME"] = experiment
        results = {}
        if args.cold:
            try:
                _report_cold(_cold(run_id, env, tmp, processes))
            finally:
                for process in processes:
                    if process.poll() is None:
                        process.terminate()
                        process.wait(60)
            return
        try:
            from mlplatform.serving.predictor import Predictor

            local = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=f"{tmp}/model")
            threads = len(os.sched_getaffinity(0))
            for label, backend in (("in-process torch fp32", "torch"), ("in-process ONNX fp32", "onnx")):
                predictor = Predictor(local, backend=backend, threads=threads)
                results[label] = _measure(predictor.predict, args)
                del predictor

            servers = [
                ("MLFlask ONNX fp32, 1 worker", {"MLFLASK_BACKEND": "onnx", "MLFLASK_WORKERS": "1"}),
                ("MLFlask ONNX fp32, 2 workers", {"MLFLASK_BACKEND": "onnx", "MLFLASK_WORKERS": "2"}),
                ("MLFlask ONNX fp32, 4 workers", {"MLFLASK_BACKEND": "onnx", "MLFLASK_WORKERS": "4"}),
                (
                    "MLFlask ONNX int8, 1 worker",
                    {"MLFLASK_BACKEND": "onnx", "MLFLASK_QUANTIZE": "1", "MLFLASK_WORKERS": "1"},
                ),
                (
                    "MLFlask ONNX int8, 2 workers",
                    {"MLFLASK_BACKEND": "onnx", "MLFLASK_QUANTIZE": "1", "MLFLASK_WORKERS": "2"},
                ),
                ("MLFlask torch fp32, 1 worker", {"MLFLASK_BACKEND": "torch", "MLFLASK_WORKERS": "1"}),
                ("MLFlask torch fp32, 2 workers", {"MLFLASK_BACKEND": "torch", "MLFLASK_WORKERS": "2"}),
            ]
            for label, extra in servers:
                port = free_port()
                server_env = {
                    **env,
                    **extra,
                    "MLFLASK_PORT": str(port),
                    "MLFLASK_STORE": f"{tmp}/store-{port}",
                    "MLFLASK_FOLLOW_INTERVAL": "0",
                }
                process, url = _start(["-m", "apps.mlflask"], server_env, port, "/health", processes)
                body = {"name": "bench", "run_id": run_id}
                requests.post(url + "/models", json=body, timeout=600).raise_for_status()
                predict, fresh = _post_json(url + "/predict"), _post_json(url + "/predict", keep_alive=False)
                results[label] = _measure(
                    lambda t, call=predict: call({"model": "bench", "texts": t}),
                    args,
                    lambda t, call=fresh: call({"model": "bench", "texts": t}),
                )
                print(label, [round(v, 4) for v in results[label]], flush=True)  # kept if a later step fails
                process.terminate()
                process.wait(60)

            _, url = _mlflow_serve(run_id, env, processes)
            invoke, fresh = _post_json(url + "/invocations"), _post_json(url + "/invocations", keep_alive=False)
            results["mlflow models serve"] = _measure(
                lambda t: invoke({"inputs": t}), args, lambda t: fresh({"inputs": t})
            )
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(60)
    _report(results)


def _report(results: dict) -> None:
    print("| way of serving | p50 ms (4 sentences) | p99 ms | req/s keep-alive | req/s new connections |")
    print("|---|---|---|---|---|")
    for label, (p50, p99, rps, fresh) in results.items():
        shown = f"{fresh:.1f}" if fresh is not None else "-"
        print(f"| {label} | {p50 * 1000:.1f} | {p99 * 1000:.1f} | {rps:.1f} | {shown} |")
    mlf = results["mlflow models serve"]
    onnx1, onnx2 = results["MLFlask ONNX fp32, 1 worker"], results["MLFlask ONNX fp32, 2 workers"]
    int8 = max(results["MLFlask ONNX int8, 1 worker"], results["MLFlask ONNX int8, 2 workers"], key=lambda r: r[3])
    torch1, torch2 = results["MLFlask torch fp32, 1 worker"], results["MLFlask torch fp32, 2 workers"]
    best_onnx = max(onnx1, onnx2, key=lambda r: r[3])
    ratios = [
        ("ONNX fp32 req/s / MLflow (new connections)", best_onnx[3] / mlf[3], ">= 5"),
        ("ONNX fp32 p50 / MLflow p50", onnx1[0] / mlf[0], "<= 0.35"),
        ("ONNX int8 req/s / MLflow (new connections)", int8[3] / mlf[3], ">= 8"),
        ("MLFlask ONNX p50 / in-process ONNX p50", onnx1[0] / results["in-process ONNX fp32"][0], "<= 1.15"),
        ("MLFlask torch p50 / in-process torch p50", torch1[0] / results["in-process torch fp32"][0], "<= 1.15"),
        ("ONNX 2 workers / 1 worker req/s (new connections)", onnx2[3] / onnx1[3], ">= 1"),
        (
            "ONNX 4 workers / 1 worker req/s (new connections)",
            results["MLFlask ONNX fp32, 4 workers"][3] / onnx1[3],
            ">= 1",
        ),
        ("torch 2 workers / 1 worker req/s (new connections)", torch2[3] / torch1[3], ">= 1"),
    ]
    print()
    print("| ratio | value | target |")
    print("|---|---|---|")
    for label, value, target in ratios:
        print(f"| {label} | {value:.2f} | {target} |")


if __name__ == "__main__":
    main()
