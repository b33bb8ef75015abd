"""MLflow's basic-auth app, as compose runs it (docker/mlflow_auth.py): only the promoter writes the registry;
MLFlask's user reads it. A real `mlflow server` here, no containers."""

import logging
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from mlplatform.launch import Service, free_port
from mlplatform.settings import Settings
from tests.helpers.inprocess import mlflask_app
from tests.helpers.services import PLATFORM_VARS, env_without

pytestmark = pytest.mark.live  # an mlflow server with its basic-auth app, as compose runs it

REPO = Path(__file__).resolve().parents[1]
PROMOTER = ("promoter", "promoter-password-123")
MLFLASK = ("mlflask", "mlflask-password-123")


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("mlflow-auth")
    port = free_port()
    env = {
        **env_without(*PLATFORM_VARS, "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"),
        "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-password-123",
        "MLFLOW_AUTH_USERS": ",".join(":".join(user) for user in (PROMOTER, MLFLASK)),
    }
    command = [sys.executable, "docker/mlflow_auth.py", "--auth-db", f"sqlite:///{folder}/auth.db", "--"]
    command += [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    command += ["--backend-store-uri", f"sqlite:///{folder}/mlflow.db", "--artifacts-destination", str(folder / "art")]
    url = f"http://127.0.0.1:{port}"
    service = Service("mlflow server (basic auth)", command, f"{url}/health", env=env, cwd=REPO).start(timeout=180)
    try:
        yield url
    finally:
        service.stop()


def _settings(url: str, user: tuple[str, str]) -> Settings:
    return Settings.from_mapping(
        {
            "MLFLOWSERVER_URL": url,
            "MLFLOW_EXP_NAME": "guarded",
            "MLFLOW_TRACKING_USERNAME": user[0],
            "MLFLOW_TRACKING_PASSWORD": user[1],
        }
    )


@pytest.fixture(scope="module")
def guarded(auth_server, serving_runs, tmp_path_factory):
    """`guarded@champion`: the good serving run's model, logged and promoted by the promoter."""
    import mlflow

    from mlplatform.registry import Registry

    folder = tmp_path_factory.mktemp("guarded")
    mlflow.set_tracking_uri(serving_runs["env"]["MLFLOWSERVER_URL"])
    run_id = serving_runs["good"].run_id
    model = mlflow.artifacts.download_artifacts(f"runs:/{run_id}/model", dst_path=str(folder / "model"))
    registry = Registry(_settings(auth_server, PROMOTER))
    experiment = registry.client.create_experiment("guarded")
    run = registry.client.create_run(experiment, run_name="promoted")
    registry.client.log_artifacts(run.info.run_id, model, "model")
    registry.client.set_terminated(run.info.run_id)
    promotion = registry.promote("guarded", run_id=run.info.run_id)
    return {"url": auth_server, "version": promotion.version, "run_id": run.info.run_id}


def test_without_a_login_mlflow_answers_401(auth_server):
    answer = requests.get(f"{auth_server}/api/2.0/mlflow/registered-models/search", timeout=10)
    assert answer.status_code == 401


def test_mlflask_credentials_cannot_write_the_registry(guarded):
    from mlflow.exceptions import MlflowException

    from mlplatform.errors import PlatformError
    from mlplatform.registry import Registry

    registry = Registry(_settings(guarded["url"], MLFLASK))
    assert registry.client.get_model_version_by_alias("guarded", "champion").version == guarded["version"]
    with pytest.raises(MlflowException) as refused:
        registry.client.set_registered_model_alias("guarded", "champion", guarded["version"])
    assert refused.value.get_http_status_code() == 403
    with pytest.raises(MlflowException):
        registry.client.create_model_version("guarded", f"runs:/{guarded['run_id']}/model", guarded["run_id"])
    with pytest.raises(PlatformError, match="PERMISSION_DENIED|Permission denied|403"):
        registry.promote("guarded", run_id=guarded["run_id"], alias="challenger")
    promoter = Registry(_settings(guarded["url"], PROMOTER))
    assert promoter.client.get_model_version_by_alias("guarded", "champion").version == guarded["version"]


def test_mlflask_serves_the_champion_with_its_read_only_login(guarded, tmp_path, caplog):
    """In process: MLFlask's login reads the registry and downloads the champion, and its password is never logged."""
    env = {
        "MLFLOWSERVER_URL": guarded["url"],
        "MLFLOW_EXP_NAME": "guarded",
        "MLFLOW_TRACKING_USERNAME": MLFLASK[0],
        "MLFLOW_TRACKING_PASSWORD": MLFLASK[1],
        "MLFLASK_FOLLOW_INTERVAL": "0",
    }
    caplog.set_level(logging.DEBUG)
    with mlflask_app(tmp_path, env) as (client, _, _):
        answer = client.post("/models", json={"name": "guarded", "model_uri": "models:/guarded@champion"})
        assert answer.status_code == 200, answer.get_json()
        assert answer.get_json()["version"] == guarded["version"]
        assert MLFLASK[1] not in caplog.text + client.get("/logs").get_data(as_text=True), "never logged"


def test_a_model_not_registered_yet_is_missing_not_forbidden(guarded):
    """The auth app answers 403 for an alias of a model that does not exist; the gate's first run must see
    "no champion yet", not a permission error (it stopped compose's pipeline once)."""
    from mlplatform.names import ModelRef
    from mlplatform.registry import NotInTracking, Registry

    registry = Registry(_settings(guarded["url"], PROMOTER))
    with pytest.raises(NotInTracking, match="does not exist"):
        registry.resolve(ModelRef("never-registered", alias="champion"))
    assert registry.resolve(ModelRef("guarded", alias="champion")).version == guarded["version"]


def test_the_bootstrap_refuses_a_user_without_a_password(tmp_path):
    env = {**env_without(*PLATFORM_VARS), "MLFLOW_AUTH_ADMIN_PASSWORD": "x" * 12, "MLFLOW_AUTH_USERS": "promoter"}
    command = [sys.executable, "docker/mlflow_auth.py", "--auth-db", f"sqlite:///{tmp_path}/a.db", "--", "true"]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "MLFLOW_AUTH_USERS" in done.stderr


def test_every_password_the_admins_included_is_set_again_at_each_start(tmp_path):
    """Rotating MLFLOW_AUTH_ADMIN_PASSWORD is a restart: MLflow itself sets the admin's only on creation."""
    from mlflow.server.auth.sqlalchemy_store import SqlAlchemyStore

    database = f"sqlite:///{tmp_path}/a.db"
    command = [sys.executable, "docker/mlflow_auth.py", "--auth-db", database, "--", "true"]
    for admin, promoter in (
        ("first-admin-password", "first-promoter-pw"),
        ("second-admin-password", "second-promoter-pw"),
    ):
        env = {
            **env_without(*PLATFORM_VARS),
            "MLFLOW_AUTH_ADMIN_PASSWORD": admin,
            "MLFLOW_AUTH_USERS": f"promoter:{promoter}",
        }
        done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-1000:]
    store = SqlAlchemyStore()
    store.init_db(database)
    assert store.authenticate_user("admin", "second-admin-password")
    assert not store.authenticate_user("admin", "first-admin-password")
    assert store.get_user("admin").is_admin
    assert store.authenticate_user("promoter", "second-promoter-pw")
