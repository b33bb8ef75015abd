"""Shared fixtures: real services on free loopback ports (S3 over HTTP, a file server), always stopped."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
import requests

from mlplatform.data.storage import open_storage
from mlplatform.launch import free_port
from mlplatform.settings import Settings
from tests.helpers.s3 import CREDENTIALS, lake_env, make_bucket
from tests.helpers.services import PLATFORM_VARS, env_without, start_mlflask, start_mlflow_server, stop_process

# A test is `live` when it needs a server subprocess or a browser: its fixtures say so, or its module's
# `pytestmark` does (the modules that run the jobs or servers themselves). `make test-fast` runs the others.
LIVE_FIXTURES = {"mlflow_server", "browser"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if LIVE_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.live)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    """Each test starts from no platform variables, with its own cache and working folder."""
    for name in PLATFORM_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def s3_endpoint():
    """moto's S3 API served over HTTP on loopback; boto3 reaches it through AWS_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint, monkeypatch):
    """Env for the S3 lake on a fresh bucket."""
    env = lake_env(s3_endpoint, make_bucket(s3_endpoint))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture(params=["local", "s3"])
def lake_mode(request, monkeypatch, tmp_path):
    """Run a test once against a local lake folder and once against the S3 endpoint."""
    if request.param == "s3":
        request.getfixturevalue("s3_env")
    else:
        monkeypatch.setenv("LAKE_DIR", str(tmp_path / "lake"))
    return request.param


@pytest.fixture
def storage(lake_mode):
    return open_storage(Settings.load())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="session")
def file_server(tmp_path_factory):
    """A local HTTP server over a folder the tests fill; yields (base URL, folder)."""
    root: Path = tmp_path_factory.mktemp("www")
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


# --- training and tracking fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny BERT built from a BertConfig with a vocab the tests write (see tests/tinymodel.py)."""
    from tests.tinymodel import build_tiny_bert

    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def sentiment_bert(tmp_path_factory) -> Path:
    """The tiny BERT already taught plain sentiment (see tests/tinymodel.py): a stand-in pretrained model."""
    from tests.tinymodel import build_sentiment_bert

    return build_sentiment_bert(tmp_path_factory.mktemp("sentiment-bert"))


@pytest.fixture(scope="session")
def mlflow_server(s3_endpoint, tmp_path_factory):
    """A real `mlflow server` subprocess: sqlite backend, artifacts proxied to the S3 endpoint's bucket.

    Yields a dict with the URL and the artifact bucket. Tests use their own experiment names.
    """
    bucket = make_bucket(s3_endpoint, name="mlflow-artifacts")
    folder = tmp_path_factory.mktemp("mlflow-server")
    creds = {**CREDENTIALS, "AWS_DEFAULT_REGION": "us-east-1", "MLFLOW_S3_ENDPOINT_URL": s3_endpoint}
    url, process = start_mlflow_server(folder, {**env_without(*PLATFORM_VARS), **creds}, f"s3://{bucket}/mlartifacts")
    try:
        yield {"url": url, "bucket": bucket, "log": folder / "server.log", "s3_endpoint": s3_endpoint}
    finally:
        stop_process(process)


# --- serving fixtures ---------------------------------------------------------------------------------------------

SERVING_EXPERIMENT = "serving-tests"


@pytest.fixture(scope="session")
def serving_runs(mlflow_server, tiny_bert, sentiment_bert, tmp_path_factory) -> dict:
    """Two FINISHED runs in the tracking server, fine-tuned on `sample` data with different learning rates:
    "good" starts from the sentiment-taught tiny BERT and passes the behavioural checks; "other" starts from
    the random tiny BERT with a learning rate too small to learn. Returns {"good", "other", "env"}."""
    from mlplatform.data.dataprep import clean_raw, prepare_raw
    from mlplatform.data.sources import SourceOptions
    from mlplatform.training.config import TrainConfig
    from mlplatform.training.finetune import run_finetune

    folder = tmp_path_factory.mktemp("serving-lake")
    env = {
        "LAKE_DIR": str(folder / "lake"),
        "MLFLOWSERVER_URL": mlflow_server["url"],
        "MLFLOW_EXP_NAME": SERVING_EXPERIMENT,
    }
    settings = Settings.from_mapping(env)
    storage = open_storage(settings)
    prepare_raw(storage, "sample:1000", SourceOptions())
    clean_raw(storage)
    common = dict(epochs=2, max_length=128, train_samples=0, test_samples=0)
    good = run_finetune(settings, TrainConfig(pretrained_model=str(sentiment_bert), learning_rate=1e-4, **common))
    other = run_finetune(settings, TrainConfig(pretrained_model=str(tiny_bert), learning_rate=1e-6, **common))
    return {"good": good, "other": other, "env": env}


@pytest.fixture(scope="module")
def mlflask(serving_runs, tmp_path_factory):
    """A live MLFlask (2 gunicorn workers) reading the serving experiment of the tracking server."""
    folder = tmp_path_factory.mktemp("mlflask")
    url, process, log_path, store = start_mlflask(folder, serving_runs["env"])
    try:
        yield {"url": url, "process": process, "log": log_path, "store": store, "runs": serving_runs}
    finally:
        stop_process(process)


@pytest.fixture(scope="module")
def live(mlflask, request):
    """The module's MLFlask with the module's NAME deployed from the good run."""
    body = {"name": request.module.NAME, "run_id": mlflask["runs"]["good"].run_id}
    response = requests.post(mlflask["url"] + "/models", json=body, timeout=120)
    assert response.status_code == 200, response.text
    return mlflask


# --- browser ------------------------------------------------------------------------------------------------------


@pytest.fixture
def browser():
    """Headless Debian Chromium for a Dash app (see tests/browser.py), always closed."""
    from tests.browser import DashBrowser

    page = DashBrowser()
    try:
        yield page
    finally:
        page.close()
