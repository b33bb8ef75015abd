"""docker-compose.yml validated by Debian's docker-compose, and every env var the code reads accounted for."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
NEEDED = {
    "mlflow": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"},
    "mlflask": {"MLFLOWSERVER_URL", "MLFLOW_EXP_NAME", "MLFLASK_STORE", "MLFLASK_TOKEN", "MLFLASK_DEPLOYMENTS"},
    "mldash": {"MLFLOWSERVER_URL", "MLFLASK_URL", "MLFLOW_EXP_NAME", "MLFLOW_UI_URL", "MLFLASK_TOKEN", "MLDASH_USERS"},
    "pipeline": {
        "AWS_BUCKET",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "MLFLOWSERVER_URL",
        "MLFLASK_URL",
        "MLFLASK_TOKEN",
        "MLFLOW_EXP_NAME",
        "DATA_SOURCE",
        "MODEL_NAME",
        "DEPLOY_METRIC",
    },
}
NEEDED["dagster-code"] = NEEDED["pipeline"] | {"DAGSTER_HOME"}
NEEDED["dagster-webserver"] = NEEDED["dagster-daemon"] = {"DAGSTER_HOME"}


@pytest.fixture(scope="module")
def config() -> dict:
    if shutil.which("docker-compose") is None:
        pytest.skip("needs Debian's docker-compose (installed by make install-system)")
    out = subprocess.run(
        ["docker-compose", "--env-file", "env/docker.env", "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_services_healthchecks_and_order(config):
    services = config["services"]
    assert {"minio", "minio-init", "mlflow", "mlflask", "mldash", "pipeline"} <= set(services)
    for name in ("minio", "mlflow", "mlflask", "mldash"):
        assert services[name]["healthcheck"]["test"], f"{name} has a healthcheck"
    assert services["mlflow"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    for name, dependency in (("mlflask", "mlflow"), ("front", "mlflask"), ("mldash", "front"), ("pipeline", "front")):
        assert services[name]["depends_on"][dependency]["condition"] == "service_healthy"
    assert services["pipeline"]["profiles"] == ["pipeline"]
    mlflow = " ".join(services["mlflow"]["command"])  # the Saagie names, with today's values as defaults
    assert '--backend-store-uri "sqlite:////mlflow/mlflow.db"' in mlflow
    assert '"${MLFLOW_DEFAULT_ARTIFACTORY_ROOT:-s3://$AWS_BUCKET/mlartifacts}"' in mlflow.replace("$$", "$")
    assert services["mlflow"]["environment"]["AWS_BUCKET"] == "mlplatform"
    assert (
        services["mlflask"]["image"] == "mlplatform-serve:latest" and services["mlflask"]["build"]["target"] == "serve"
    )
    command = services["mlflask"]["command"]
    assert (" ".join(command) if isinstance(command, list) else command) == "python -m apps.mlflask"
    assert "MLFLASK_WORKERS" not in services["mlflask"]["environment"], "compose ships the measured default (1)"
    assert "docker/mlflow_auth.py" in mlflow and "--app-name" not in mlflow, "the bootstrap adds the auth app itself"


def test_each_service_has_its_own_mlflow_login_and_only_the_promoters_write(config):
    services = config["services"]
    logins = {
        name: services[name]["environment"].get("MLFLOW_TRACKING_USERNAME")
        for name in ("mlflask", "mldash", "pipeline", "dagster-code")
    }
    assert logins == {"mlflask": "mlflask", "mldash": "promoter", "pipeline": "promoter", "dagster-code": "promoter"}
    users = services["mlflow"]["environment"]["MLFLOW_AUTH_USERS"]
    assert {item.split(":")[0] for item in users.split(",")} == {"promoter", "mlflask"}
    for name in ("dagster-webserver", "dagster-daemon"):
        assert "MLFLOW_TRACKING_PASSWORD" not in (services[name].get("environment") or {})


def test_required_secrets_fail_fast_without_values():
    if shutil.which("docker-compose") is None:
        pytest.skip("needs docker-compose")
    out = subprocess.run(
        ["docker-compose", "config"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert out.returncode != 0 and "MINIO_ROOT" in out.stderr


def test_every_service_gets_the_variables_it_needs(config):
    for service, needed in NEEDED.items():
        provided = set(config["services"][service].get("environment") or {})
        assert needed <= provided, f"{service} lacks {sorted(needed - provided)}"


def test_readme_gives_both_commands():
    readme = (REPO / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert (REPO / "docs" / "mldash.png").stat().st_size > 10_000


def _policies(folder: Path, bucket: str = "mlplatform", prefix: str = "imdb") -> dict[str, dict]:
    """The MinIO policies as minio-init fills them in (docker/minio_init.sh, its RENDER_ONLY mode)."""
    env = {"RENDER_ONLY": str(folder), "POLICY_TEMPLATES": str(REPO / "env" / "minio"), "BUCKET": bucket}
    subprocess.run(["sh", "docker/minio_init.sh"], cwd=REPO, env={**env, "PREFIX": prefix}, check=True, timeout=30)
    return {path.stem: json.loads(path.read_text()) for path in folder.glob("*.json")}


def test_minio_policies_follow_the_bucket_and_prefix_and_no_failure_is_hidden(tmp_path):
    policies = _policies(tmp_path, "team-lake", "reviews/v2")
    resources = {r for policy in policies.values() for st in policy["Statement"] for r in st["Resource"]}
    assert resources == {
        "arn:aws:s3:::team-lake",
        "arn:aws:s3:::team-lake/reviews/v2/*",
        "arn:aws:s3:::team-lake/reviews/v2/predictions_log/*",
        "arn:aws:s3:::team-lake/reviews/v2/feedback/*",
        "arn:aws:s3:::team-lake/mlartifacts/*",
    }
    script = (REPO / "docker" / "minio_init.sh").read_text()
    assert "|| true" not in script and "set -eu" in script


def test_the_front_is_the_only_way_in_and_dagster_code_is_apart(config):
    """MLFlask and MLDash publish no port (the front does, one per app, so replicas need no port range), and
    dagster-code shares no network with them: its gRPC server answers anyone who reaches it."""
    services = config["services"]
    assert not services["mlflask"].get("ports") and not services["mldash"].get("ports")
    assert {p["published"] if isinstance(p, dict) else p.split(":")[1] for p in services["front"]["ports"]} == {
        "5001",
        "8050",
    }
    assert services["mlflask"]["environment"]["MLFLASK_BEHIND_PROXY"] == "1"
    assert services["mldash"]["environment"]["MLFLASK_URL"] == "http://front:5001"
    networks = {name: set(service.get("networks") or ["default"]) for name, service in services.items()}
    for name in ("mlflask", "mldash"):
        assert not networks[name] & networks["dagster-code"], f"{name} shares a network with dagster-code"
    assert config["networks"]["dagster"].get("internal") is True
    assert networks["dagster-daemon"] == {"dagster"}
    conf = (REPO / "docker" / "front" / "nginx.conf").read_text()
    for directive in ("client_header_timeout", "client_body_timeout", "send_timeout", "client_max_body_size 1m"):
        assert directive in conf
    assert "proxy_request_buffering on" in conf


def test_locked_down_defaults(config, tmp_path):
    services = config["services"]
    for name, service in services.items():
        for port in service.get("ports", []):
            text = port if isinstance(port, str) else f"{port.get('host_ip', '')}:{port.get('published')}"
            assert text.startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        environment = service.get("environment") or {}
        if name != "minio":
            assert not {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"} & set(environment), f"{name} sees the MinIO root"
    users = {services[name]["environment"]["AWS_ACCESS_KEY_ID"] for name in ("mlflow", "pipeline", "mldash", "mlflask")}
    assert len(users) == 4, "one MinIO user per service"
    # MLFlask writes its prediction log and feedback, and nothing else; it reads nothing from the lake
    assert services["mlflask"]["environment"]["AWS_ACCESS_KEY_ID"] == "prediction-logger"
    policy = _policies(tmp_path)["lake-log"]
    assert [statement["Action"] for statement in policy["Statement"]] == [["s3:PutObject"]]
    resources = policy["Statement"][0]["Resource"]
    assert resources == ["arn:aws:s3:::mlplatform/imdb/predictions_log/*", "arn:aws:s3:::mlplatform/imdb/feedback/*"]
    # MLDash reads the lake (the promotion gate scores on clean/ test) and may write nothing there
    assert services["mldash"]["environment"]["AWS_ACCESS_KEY_ID"] == "lake-reader"  # env/docker.env's
    policy = _policies(tmp_path)["lake-read"]
    actions = {action for statement in policy["Statement"] for action in statement["Action"]}
    assert actions == {"s3:ListBucket", "s3:GetObject"}, actions


def test_every_server_states_its_own_health_check(config):
    """One image serves every service, and its HEALTHCHECK is MLFlask's: a server left on it is never healthy."""
    for name, service in config["services"].items():
        if name in ("minio-init", "pipeline"):
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check of its own"


def test_a_service_given_the_bucket_gets_its_keys(config):
    """The platform refuses AWS_BUCKET without keys: a service that needs no lake must not be given one."""
    for name, service in config["services"].items():
        env = service.get("environment") or {}
        if "AWS_BUCKET" in env:
            assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= set(env), f"{name} has AWS_BUCKET, no keys"


def test_dagster_runs_in_its_code_container_and_all_three_share_one_instance(config):
    services = config["services"]
    code, web, daemon = (services[f"dagster-{name}"] for name in ("code", "webserver", "daemon"))
    assert code["command"] == "dagster code-server start -m mlplatform.orchestration -h 0.0.0.0 -p 4000"
    assert web["command"] == "dagster-webserver -w docker/dagster-workspace.yaml -h 0.0.0.0 -p 3000"
    assert daemon["command"] == "dagster-daemon run -w docker/dagster-workspace.yaml"
    for service in (web, daemon):  # they read the instance and ask the code server: no platform secret
        assert not {"MLFLASK_TOKEN", "AWS_SECRET_ACCESS_KEY"} & set(service["environment"]), service["environment"]
    for service in (code, web, daemon):
        assert service["environment"]["DAGSTER_HOME"] == "/opt/dagster/home"
        mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in service["volumes"]]
        assert any(m.startswith("dagster-home:/opt/dagster/home") for m in mounts), mounts
        assert any(m.endswith("/opt/dagster/home/dagster.yaml:ro") for m in mounts), mounts
    assert "dagster-home" in config["volumes"]
    assert code["environment"]["AWS_ACCESS_KEY_ID"] == services["pipeline"]["environment"]["AWS_ACCESS_KEY_ID"]
    assert daemon["depends_on"]["dagster-webserver"]["condition"] == "service_healthy"
    assert web["depends_on"]["dagster-code"]["condition"] == "service_healthy"
