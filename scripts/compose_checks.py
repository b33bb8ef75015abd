"""`make compose-check`: the compose stack brought up, the pipeline run through it, and each service checked from the
host as a user meets it. Everything is torn down at the end, volumes included, pass or fail."""

from __future__ import annotations

import base64
import re
import socket
import time

import requests

from scripts.compose import (
    ENV_FILE,
    FRONT,
    PROJECT,
    REPO,
    SERVE_IMAGE,
    CheckFailed,
    compose,
    containers,
    logs_of_failures,
    replica_versions,
    sh,
    stop_docker,
    up,
    wait_healthy,
)

TEXTS = ["A brilliant, moving film. I loved it.", "A dreadful, boring film and a waste of time."]
ASSETS = {
    *("raw_reviews", "clean_reviews", "finetuned_model", "challenger_evaluation", "champion_deployment"),
    *("served_predictions", "batch_predictions", "model_monitoring"),
}


def _env() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_FILE.read_text().splitlines() if "=" in line and line[0] != "#")
    return {key.strip(): value.strip() for key, value in pairs}


def _expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


_ALIAS_API = "http://127.0.0.1:5000/api/2.0/mlflow/registered-models/alias"


def _mlflask_login() -> tuple[str, str]:
    return "mlflask", _env()["MLFLOW_MLFLASK_PASSWORD"]


def _champion(name: str) -> str:
    answer = requests.get(_ALIAS_API, params={"name": name, "alias": "champion"}, auth=_mlflask_login(), timeout=10)
    _expect(answer.ok, f"MLflow has no {name}@champion: {answer.status_code} {answer.text[:200]}")
    return answer.json()["model_version"]["version"]


SERVE_IMAGE_LIMIT_MB = 800


def check_serving_image() -> None:
    """MLFlask's image holds no torch and stays under SERVE_IMAGE_LIMIT_MB; compose runs MLFlask on it."""
    size = int(sh("docker", "image", "inspect", "-f", "{{.Size}}", SERVE_IMAGE, capture=True).stdout) / 1e6
    _expect(size <= SERVE_IMAGE_LIMIT_MB, f"{SERVE_IMAGE} is {size:.0f} MB, over {SERVE_IMAGE_LIMIT_MB} MB")
    torch = sh("docker", "run", "--rm", SERVE_IMAGE, "python", "-c", "import torch", check=False, capture=True)
    _expect(torch.returncode != 0, f"`import torch` works in {SERVE_IMAGE}")
    service = (
        "--filter",
        f"label=com.docker.compose.project={PROJECT}",
        "--filter",
        "label=com.docker.compose.service=mlflask",
    )
    images = set(sh("docker", "ps", *service, "--format", "{{.Image}}", capture=True).stdout.split())
    _expect(images == {SERVE_IMAGE}, f"compose runs MLFlask on {images or 'nothing'}, not {SERVE_IMAGE}")
    print(f"  {SERVE_IMAGE}: {size:.0f} MB, no torch; compose's mlflask runs it")


def check_registry_guard(name: str) -> None:
    """MLflow's basic auth: no login is a 401, and MLFlask's login may read the registry but not move an alias."""
    version = _champion(name)
    answer = requests.get(_ALIAS_API, params={"name": name, "alias": "champion"}, timeout=10)
    _expect(answer.status_code == 401, f"MLflow without a login: {answer.status_code}, not 401")
    body = {"name": name, "alias": "champion", "version": version}
    answer = requests.post(_ALIAS_API, json=body, auth=_mlflask_login(), timeout=10)
    _expect(answer.status_code == 403, f"moving @champion with MLFlask's login: {answer.status_code}, not 403")


def check_mlflask(url: str, name: str, token: str) -> str:
    """The champion answers /predict, V2 and /invocations; the management routes need the token."""
    version = _champion(name)
    answer = requests.post(f"{url}/predict", json={"model": name, "texts": TEXTS}, timeout=60)
    _expect(answer.status_code == 200, f"POST {url}/predict: {answer.status_code} {answer.text[:300]}")
    body = answer.json()
    _expect(body["version"] == version, f"{url} serves version {body['version']}, the champion is {version}")
    _expect([p["label"] for p in body["predictions"]] == ["positive", "negative"], f"labels: {body['predictions']}")
    v2 = {"inputs": [{"name": "text", "shape": [len(TEXTS)], "datatype": "BYTES", "data": TEXTS}]}
    answer = requests.post(f"{url}/v2/models/{name}/infer", json=v2, timeout=60)
    _expect(answer.status_code == 200, f"V2 infer: {answer.status_code} {answer.text[:300]}")
    answer = requests.post(f"{url}/invocations", params={"model": name}, json={"inputs": TEXTS}, timeout=60)
    _expect(answer.status_code == 200 and len(answer.json()["predictions"]) == 2, f"/invocations: {answer.text[:300]}")
    for method, path in (("POST", "/models"), ("DELETE", f"/models/{name}")):
        answer = requests.request(method, url + path, json={"name": name, "metric": "val_f1"}, timeout=30)
        _expect(answer.status_code == 401, f"{method} {path} without the token: {answer.status_code}, not 401")
    answer = requests.post(f"{url}/models", json={"name": "x"}, headers={"Authorization": "Bearer wrong"}, timeout=30)
    _expect(answer.status_code == 401, f"POST /models with a wrong token: {answer.status_code}")
    _expect(bool(token), "MLFLASK_TOKEN is set in the env file")
    return version


def check_prediction_log(url: str, name: str, token: str) -> None:
    """MLFlask writes its prediction log to the lake (with its write-only MinIO user) and takes feedback."""
    import boto3

    env = _env()
    answer = requests.post(f"{url}/predict", json={"model": name, "texts": TEXTS}, timeout=60)
    _expect(answer.status_code == 200, f"POST /predict: {answer.status_code} {answer.text[:300]}")
    items = [{"prediction_id": p["prediction_id"], "label": p["label"]} for p in answer.json()["predictions"]]
    refused = requests.post(
        f"{url}/feedback", json={"feedback": items}, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    _expect(refused.status_code == 401, f"POST /feedback with the deploy token: {refused.status_code}, not 401")
    auth = {"Authorization": f"Bearer {env['MLFLASK_FEEDBACK_TOKEN']}"}
    answer = requests.post(f"{url}/feedback", json={"feedback": items}, headers=auth, timeout=30)
    _expect(answer.status_code == 200, f"POST /feedback: {answer.status_code} {answer.text[:300]}")
    s3 = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9000",
        region_name=env.get("AWS_REGION_NAME", "us-east-1"),
        aws_access_key_id=env["LAKE_S3_USER"],
        aws_secret_access_key=env["LAKE_S3_SECRET"],
    )
    prefix = env.get("LAKE_PREFIX", "imdb")
    deadline = time.monotonic() + 60  # MLFLASK_LOG_FLUSH_SECONDS is 10
    while True:
        found = {
            stage: s3.list_objects_v2(Bucket=env["AWS_BUCKET"], Prefix=f"{prefix}/{stage}/").get("KeyCount", 0)
            for stage in ("predictions_log", "feedback")
        }
        if all(found.values()) or time.monotonic() > deadline:
            break
        time.sleep(2)
    _expect(all(found.values()), f"objects in the lake after predictions and feedback: {found}")


def check_mldash(name: str, users: str) -> None:
    """The login is asked for; with MLDASH_USERS' credentials, Chromium sees the runs table and gets predictions."""
    from tests.browser import DashBrowser

    url = "http://127.0.0.1:8050"
    _expect(requests.get(url + "/", timeout=30).status_code == 401, "MLDash answers without a login")
    user, password = users.split(",")[0].split(":", 1)
    login = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    _expect(requests.get(url + "/", headers=login, timeout=30).status_code == 200, "MLDash refuses its own login")
    browser = DashBrowser(1400)
    try:
        browser.open(url, headers=login)
        browser.wait_until(
            lambda: browser.find_elements("#runs-table tbody tr:has(input[type='radio'])"), "runs listed", 90
        )
        browser.wait_for_contains_text("#deployed-models", name, timeout=60)
        browser.click(f"#deployed-models input[value='{name}']")
        browser.find_element("#input-text").send_keys("\n".join(TEXTS))
        browser.click("#predict-button")
        browser.wait_for_element("#predictions li", timeout=60)
        labels = [item.text.split()[0] for item in browser.find_elements("#predictions li")]
        _expect(labels == ["positive", "negative"], f"MLDash predictions: {labels}")
        browser.screenshot(REPO / "build" / "compose" / "mldash.png")
    finally:
        browser.close()


def check_dagster() -> None:
    query = {"query": "{ assetNodes { assetKey { path } } }"}
    answer = requests.post("http://127.0.0.1:3000/graphql", json=query, timeout=60)
    _expect(answer.ok, f"Dagster GraphQL: {answer.status_code}")
    names = {"/".join(node["assetKey"]["path"]) for node in answer.json()["data"]["assetNodes"]}
    _expect(ASSETS <= names, f"Dagster lists {sorted(names)}")


def wait_served(use_minio: bool, name: str, version: str, replicas: int, timeout: float = 300) -> None:
    """Every MLFlask replica serves `version` of `name`, with no one deploying it (a bounded wait)."""
    deadline = time.monotonic() + timeout
    seen: dict = {}
    while time.monotonic() < deadline:
        seen = replica_versions(use_minio, name)
        if len(seen) == replicas and all(v == version for v in seen.values()):
            return
        time.sleep(2)
    raise CheckFailed(f"expected {replicas} MLFlask replicas serving {name} version {version}; saw {seen}")


def _front_health_within(seconds: float) -> None:
    started = time.monotonic()
    answer = requests.get(FRONT + "/health", timeout=seconds)
    _expect(answer.ok and time.monotonic() - started < seconds, f"/health through the front: {answer.status_code}")


def check_front(use_minio: bool) -> None:
    """Through the front: 200 stalled clients and 8 of each malformed kind leave /health answering within 2 s, and
    are cut off; pipelined requests are answered in order; no MLFlask or MLDash container publishes a port."""
    host, port = "127.0.0.1", 5001
    malformed = [
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n-6\r\nabcdef\r\n",
        b"GET /health HTTP/1.1\r\nX-Pad: " + b"a" * (70 << 10),
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 9999999999\r\n\r\n{",
    ]
    socks = []
    try:
        for i in range(200):
            sock = socket.create_connection((host, port), timeout=5)
            cut_short = b"Content-Length: 100\r\n\r\n{" if i % 2 else b""  # in the body, or in the headers
            sock.sendall(b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n" + cut_short)
            socks.append(sock)
        for raw in malformed:
            for _ in range(8):
                sock = socket.create_connection((host, port), timeout=5)
                try:
                    sock.sendall(raw)
                except OSError:
                    pass  # refused before it was all sent
                socks.append(sock)
        _front_health_within(2)
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" * 2 + b"GET /nowhere HTTP/1.1\r\n"
                         b"Host: 127.0.0.1\r\nConnection: close\r\n\r\n")  # fmt: skip
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        statuses = re.findall(rb"HTTP/1\.1 (\d{3}) ", answer)
        _expect(statuses == [b"200", b"200", b"404"], f"pipelined through the front: {statuses}")
    finally:
        for sock in socks:
            sock.close()
    _front_health_within(2)
    for service in ("mlflask", "mldash"):
        for cid in containers(use_minio).get(service, []):
            ports = sh("docker", "port", cid, capture=True).stdout.strip()
            _expect(not ports, f"{service} publishes {ports}: only the front should")


_RESOLVE = "import socket, sys; socket.getaddrinfo(sys.argv[1], 4000)"


def check_networks(use_minio: bool) -> None:
    """dagster-code (the promoter's secrets, gRPC without a login) cannot be resolved from MLFlask or MLDash; the
    jobs reach MLFlask through the front."""
    found = containers(use_minio)
    for service in ("mlflask", "mldash"):
        cid = found[service][0]
        reached = sh("docker", "exec", cid, "python", "-c", _RESOLVE, "dagster-code", check=False, capture=True)
        _expect(reached.returncode != 0, f"{service} resolves dagster-code")
        resolves = sh("docker", "exec", cid, "python", "-c", _RESOLVE, "mlflow", check=False, capture=True)
        _expect(resolves.returncode == 0, f"{service} cannot resolve mlflow: {resolves.stderr[-300:]}")
    ask = "import urllib.request; urllib.request.urlopen('http://front:5001/health', timeout=5)"
    via_front = sh("docker", "exec", found["dagster-code"][0], "python", "-c", ask, check=False, capture=True)
    _expect(via_front.returncode == 0, f"dagster-code cannot reach MLFlask via the front: {via_front.stderr[-300:]}")


def run_checks(use_minio: bool, daemon) -> int:
    env = _env()
    name, token = env.get("MODEL_NAME", "movie-sentiment"), env.get("MLFLASK_TOKEN", "")
    timings: list[tuple[str, float]] = []

    def step(what: str, action) -> None:
        started = time.monotonic()
        print(f"\ncompose-check: {what}", flush=True)
        action()
        timings.append((what, time.monotonic() - started))
        print(f"compose-check: {what}: PASS ({timings[-1][1]:.0f} s)", flush=True)

    state: dict = {}
    try:
        compose(use_minio, "--profile", "pipeline", "down", "-v", "--remove-orphans", check=False, capture=True)
        step("every service up and healthy", lambda: up(use_minio))
        step(
            "the pipeline profile (five jobs on sample)",
            lambda: compose(use_minio, "--profile", "pipeline", "run", "--rm", "pipeline"),
        )
        step(
            "MLFlask serves the champion; management needs the token",
            lambda: state.update(version=check_mlflask(FRONT, name, token)),
        )
        step(
            "MLFlask logs predictions and feedback to the lake",
            lambda: check_prediction_log(FRONT, name, token),
        )
        step("the front: stalled, malformed and pipelined clients; /health within 2 s", lambda: check_front(use_minio))
        step("dagster-code on its own network: MLFlask and MLDash cannot reach it", lambda: check_networks(use_minio))
        step("MLFlask runs on the serving image: no torch, at most 800 MB", check_serving_image)
        step("MLflow: no login is refused, MLFlask's login cannot move @champion", lambda: check_registry_guard(name))
        step("MLDash: login, runs table, predictions in Chromium", lambda: check_mldash(name, env["MLDASH_USERS"]))
        step("Dagster lists the assets, with batch scoring and monitoring", check_dagster)
        step(
            "--scale mlflask=2: both replicas serve the champion",
            lambda: (
                compose(use_minio, "up", "-d", "--no-recreate", "--scale", "mlflask=2"),
                wait_healthy(use_minio),
                wait_served(use_minio, name, state["version"], 2),
            ),
        )
        step(
            "restart mlflask: the model is back, no POST /models",
            lambda: (
                compose(use_minio, "restart", "mlflask"),
                wait_healthy(use_minio),
                wait_served(use_minio, name, state["version"], 2),
            ),
        )
        step(
            "down and up, volumes kept: the model is back",
            lambda: (compose(use_minio, "down"), up(use_minio), wait_served(use_minio, name, state["version"], 1)),
        )
    except Exception as exc:  # noqa: BLE001 - any failure: say it, show the services' logs, tear down
        print(f"\ncompose-check: FAILED: {type(exc).__name__}: {exc}", flush=True)
        logs_of_failures(use_minio)
        return 1
    finally:
        compose(use_minio, "--profile", "pipeline", "down", "-v", "--remove-orphans", check=False)
        stop_docker(daemon)
    print("\ncompose-check: all passed")
    for what, seconds in timings:
        print(f"  {seconds:6.0f} s  {what}")
    return 0
