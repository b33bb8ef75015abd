"""Serving speed on one registered servable, every runtime, in one run (issue #31).

The same version, `models:/bench@champion` (the default model fine-tuned here, or --run-id), served by:
1. MLFlask as the README and compose start it (`python -m apps.mlflask`, 1 worker), and with 2 workers;
2. `mlflow models serve -m models:/bench@champion --env-manager local` (1 worker);
3. MLServer's MLflow runtime with adaptive batching on (max_batch_size 32, max_batch_time 5 ms), from its own
   virtual environment (--mlserver-venv: MLServer pins fastapi<0.116, which the lock's MLflow cannot share);
4. the in-process servable, from the platform's one loader, called by the same client threads (no HTTP).

--cold (the default; the only mode): each server is started, the version deployed, and at once, with no warm-up,
200 one-sentence requests from 8 clients on new connections; then 400 more (steady); then the 4-sentence p50 over
40 sequential requests. The sentences are real (../shared/data/rt-polarity-dev.csv). Each server's CPU seconds,
children included (psutil), are read around the steady burst: the load generator shares these two cores.

--before DIR (another checkout, e.g. `git worktree add /tmp/before <ref>`): MLFlask as shipped from DIR and from
here, alternately, two rounds each, on the same version, and the ratio of their means: a change's before and after
measured in one run.

Usage: python benchmarks/serve_bench.py --cold [--run-id ID --tracking-uri URI] [--mlserver-venv .venv-mlserver]
       python benchmarks/serve_bench.py --before /tmp/before
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import psutil

from mlplatform.launch import Service, free_port
from mlplatform.serving.behaviour import SAMPLE_TEXTS

REPO = Path(__file__).resolve().parents[1]
SENTENCES = REPO.parent / "shared" / "data" / "rt-polarity-dev.csv"
NAME, CLIENTS = "bench", 8


def _sentences() -> list[str]:
    if SENTENCES.is_file():
        return pd.read_csv(SENTENCES)["text"].head(1000).tolist()
    return SAMPLE_TEXTS * 100


def _new_connections(url: str):
    """A client that opens a new connection per request (http.client: light, so the load generator takes less
    of the CPU it shares with the server than `requests` would)."""
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
        return payload

    return call


def _burst(call, texts: list[str]) -> tuple[float, float]:
    """(p99 seconds, req/s) of one-sentence calls from CLIENTS threads."""

    def timed(text):
        started = time.perf_counter()
        call([text])
        return time.perf_counter() - started

    start = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        latencies = sorted(pool.map(timed, texts))
    return latencies[int(0.99 * (len(latencies) - 1))], len(texts) / (time.perf_counter() - start)


def _p50(call, n: int = 40) -> float:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        call(SAMPLE_TEXTS)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _cpu(process: psutil.Process | None) -> float:
    """CPU seconds of a process and its children so far (this process's own when None)."""
    process = process or psutil.Process()
    total = 0.0
    for p in [process, *process.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def _measure(label: str, call, texts: list[str], process: psutil.Process | None, results: dict) -> None:
    first = _burst(call, texts[:200])
    before = _cpu(process)
    steady = _burst(call, texts[200:600])
    cpu = (_cpu(process) - before) / 400
    results[label] = {"first": first, "steady": steady, "p50": _p50(call), "cpu": cpu}
    print(label, results[label], flush=True)  # kept if a later step fails


def _start(command: list[str], env: dict, url: str, health: str, source: Path = REPO) -> Service:
    env = {**env, "PATH": f"{Path(command[0]).parent}{os.pathsep}{env.get('PATH', '')}"}  # uvicorn, mlserver
    log = Path(tempfile.gettempdir(), f"serve-bench-{urlsplit(url).port}.log")
    return Service(command[2], command, url + health, env=env, log=log, cwd=source).start(timeout=300)


def _mlflask(
    env: dict, workers: int, texts: list[str], tmp: str, results: dict, source: Path = REPO, label: str = ""
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server_env = {
        **env,
        "MLFLASK_PORT": str(port),
        "MLFLASK_WORKERS": str(workers),
        "MLFLASK_STORE": f"{tmp}/store-{port}",
        "MLFLASK_PREDICTION_LOG": "0",  # its lake writes are not what is measured here
    }
    service = _start([sys.executable, "-m", "apps.mlflask"], server_env, url, "/health", source)
    try:
        job4 = [sys.executable, "jobs/model_deployment.py", "--name", NAME, "--version", "1"]
        deployed = subprocess.run(job4, env={**server_env, "MLFLASK_URL": url}, cwd=REPO, capture_output=True)
        if deployed.returncode != 0:
            raise RuntimeError(deployed.stderr.decode()[-2000:])
        fresh = _new_connections(url + "/predict")
        label = label or ("MLFlask as shipped (1 worker)" if workers == 1 else f"MLFlask, {workers} workers")
        _measure(
            label, lambda t: fresh({"model": NAME, "texts": t}), texts, psutil.Process(service.process.pid), results
        )
    finally:
        service.stop()


def _mlflow_serve(env: dict, texts: list[str], results: dict) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "mlflow", "models", "serve", "-m", f"models:/{NAME}@champion"]
    command += ["-h", "127.0.0.1", "-p", str(port), "--env-manager", "local", "-w", "1"]
    service = _start(command, env, url, "/ping")
    try:
        fresh = _new_connections(url + "/invocations")
        call = lambda t: fresh({"dataframe_split": {"columns": ["text"], "data": [[x] for x in t]}})  # noqa: E731
        _measure("mlflow models serve", call, texts, psutil.Process(service.process.pid), results)
    finally:
        service.stop()


def _mlserver(venv: Path, env: dict, texts: list[str], tmp: str, results: dict) -> None:
    """MLServer's MLflow runtime on the fetched model folder, adaptive batching as its docs set it."""
    import mlflow

    folder = Path(tmp, "mlserver")
    shutil.rmtree(folder, ignore_errors=True)  # a fresh download of the version
    local = mlflow.artifacts.download_artifacts(f"models:/{NAME}@champion", dst_path=str(folder / "model"))
    http_port, grpc_port, metrics_port = free_port(), free_port(), free_port()
    (folder / "settings.json").write_text(
        # parallel_workers 0: inference in the server process. MLServer 1.7's worker processes die at start here
        # ("There is no current event loop in thread 'MainThread'"), and on 2 cores a pool would only add copies.
        json.dumps(
            {
                "http_port": http_port,
                "grpc_port": grpc_port,
                "metrics_port": metrics_port,
                "host": "127.0.0.1",
                "parallel_workers": 0,
            }
        )
    )
    (folder / "model-settings.json").write_text(
        json.dumps(
            {
                "name": NAME,
                "implementation": "mlserver_mlflow.MLflowRuntime",
                "max_batch_size": 32,
                "max_batch_time": 0.005,
                "parameters": {"uri": str(Path(local).resolve())},
            }
        )
    )
    url = f"http://127.0.0.1:{http_port}"
    command = [str(venv / "bin" / "mlserver"), "start", str(folder)]
    log = Path(tempfile.gettempdir(), "serve-bench-mlserver.log")
    service = Service("mlserver", command, f"{url}/v2/models/{NAME}/ready", env=env, log=log, cwd=folder)
    service.start(timeout=300)
    try:
        fresh = _new_connections(f"{url}/v2/models/{NAME}/infer")

        def call(t):
            inputs = [{"name": "text", "shape": [len(t), 1], "datatype": "BYTES", "data": t}]
            return fresh({"inputs": inputs, "parameters": {"content_type": "pd"}})

        _measure(
            "MLServer (MLflow runtime, adaptive batching)", call, texts, psutil.Process(service.process.pid), results
        )
    finally:
        service.stop()


def _in_process(settings, texts: list[str], results: dict) -> None:
    from mlplatform.serving.loader import load_servable

    servable = load_servable(f"models:/{NAME}@champion", settings)
    _measure("in-process servable (the one loader)", servable.predict, texts, None, results)


def _train(tmp: str) -> tuple[str, str]:
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
    prepare_raw(storage, "sample:2000", SourceOptions())
    clean_raw(storage)
    return run_finetune(settings, TrainConfig(train_samples=1000, test_samples=300, max_length=64)).run_id, uri


def _report(results: dict) -> None:
    print("| one servable, served by | first 200: p99 ms | req/s | steady: p99 ms | req/s | 4-sentence p50 ms "
          "| CPU ms / request |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for label, r in results.items():
        (p99_first, rps_first), (p99_steady, rps_steady) = r["first"], r["steady"]
        print(
            f"| {label} | {p99_first * 1000:.1f} | {rps_first:.1f} | {p99_steady * 1000:.1f} | {rps_steady:.1f} "
            f"| {r['p50'] * 1000:.1f} | {r['cpu'] * 1000:.2f} |"
        )
    shipped = results["MLFlask as shipped (1 worker)"]
    ratios = [("MLFlask / mlflow models serve, steady req/s", "mlflow models serve", "steady", ">= 1.5")]
    ratios += [("MLFlask / MLServer, steady req/s", "MLServer (MLflow runtime, adaptive batching)", "steady", ">= 1.2")]
    print("\n| ratio | value | target |\n|---|---|---|")
    for text, other, _, target in ratios:
        if other in results:
            print(f"| {text} | {shipped['steady'][1] / results[other]['steady'][1]:.2f} | {target} |")
    for other in ("mlflow models serve", "MLServer (MLflow runtime, adaptive batching)"):
        if other in results:
            print(f"| MLFlask 4-sentence p50 / {other} | {shipped['p50'] / results[other]['p50']:.2f} | < 1 |")
    local = results["in-process servable (the one loader)"]
    print(f"| MLFlask CPU per request / in-process servable | {shipped['cpu'] / local['cpu']:.2f} | <= 1.2 |")


def _report_before_after(results: dict, before: Path) -> None:
    def mean(side: str, key) -> float:
        return statistics.mean(key(r) for label, r in results.items() if label.startswith(side))

    print("\n| MLFlask as shipped | steady req/s | 4-sentence p50 ms |\n|---|---|---|")
    for side in (f"before ({before})", "after"):
        print(f"| {side} | {mean(side, lambda r: r['steady'][1]):.1f} | {mean(side, lambda r: r['p50']) * 1000:.1f} |")
    ratio = mean("after", lambda r: r["steady"][1]) / mean("before", lambda r: r["steady"][1])
    print(f"| after / before, steady req/s | {ratio:.3f} | |")


def _before_after(env: dict, texts: list[str], tmp: str, before: Path) -> None:
    results: dict = {}
    for round_ in (1, 2):
        for side, source in ((f"before ({before})", before), ("after", REPO)):
            _mlflask(env, 1, texts, tmp, results, source, label=f"{side}, round {round_}")
    _report_before_after(results, before)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cold", action="store_true", help="measure right after a deploy, as users meet it (the default)")
    p.add_argument("--run-id", help="a finished run of job 3 to serve (else one is trained here)")
    p.add_argument("--tracking-uri", help="the MLflow of --run-id")
    p.add_argument("--mlserver-venv", type=Path, default=REPO / ".venv-mlserver", help="venv with mlserver-mlflow")
    p.add_argument("--workdir", type=Path, help="keep the trained model, store and logs here (default: a temp dir)")
    p.add_argument("--only", help="measure only the servers whose label contains this (e.g. MLFlask)")
    p.add_argument("--before", type=Path, help="another checkout: MLFlask from it against MLFlask from here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        import mlflow

        from mlplatform.settings import Settings

        tmp = str(args.workdir or scratch)
        Path(tmp).mkdir(parents=True, exist_ok=True)
        trained = Path(tmp, "run.json")
        if args.run_id:
            run_id, uri = args.run_id, args.tracking_uri
        elif trained.is_file():  # a --workdir that already holds a trained model
            run_id, uri = json.loads(trained.read_text())
        else:
            run_id, uri = _train(tmp)
            trained.write_text(json.dumps([run_id, uri]))
        mlflow.set_tracking_uri(uri)
        experiment = mlflow.get_experiment(mlflow.get_run(run_id).info.experiment_id).name
        client = mlflow.MlflowClient()
        known = client.search_model_versions(f"name = '{NAME}' and run_id = '{run_id}'")
        version = known[0].version if known else mlflow.register_model(f"runs:/{run_id}/model", NAME).version
        client.set_registered_model_alias(NAME, "champion", version)
        env = {**os.environ, "TQDM_DISABLE": "1", "MLFLOW_TRACKING_URI": uri, "MLFLOW_BACKEND_STORE_URI": uri}
        env |= {"MLFLOW_EXP_NAME": experiment, "MLFLASK_FOLLOW_INTERVAL": "0"}
        texts = _sentences()
        if args.before:
            _before_after(env, texts, tmp, args.before.resolve())
            return
        results: dict = {}
        steps = [
            ("MLFlask as shipped", lambda: _mlflask(env, 1, texts, tmp, results)),
            ("MLFlask, 2 workers", lambda: _mlflask(env, 2, texts, tmp, results)),
            ("mlflow models serve", lambda: _mlflow_serve(env, texts, results)),
            ("MLServer", lambda: _mlserver(args.mlserver_venv, env, texts, tmp, results)),
            (
                "in-process",
                lambda: _in_process(Settings.from_mapping({"MLFLOW_BACKEND_STORE_URI": uri}), texts, results),
            ),
        ]
        for label, step in steps:
            if args.only and args.only not in label:
                continue
            if label == "MLServer" and not (args.mlserver_venv / "bin" / "mlserver").is_file():
                print(f"MLServer skipped: no {args.mlserver_venv}/bin/mlserver (scripts/mlserver_venv.sh)", flush=True)
                continue
            step()
    if not args.only:
        _report(results)


if __name__ == "__main__":
    main()
