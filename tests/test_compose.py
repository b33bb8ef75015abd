"""docker-compose.yml validated by Debian's docker-compose, and every env var the code reads accounted for."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mlplatform.envfile import read_env_file
from mlplatform.trainconfig import ENV_VARS

REPO = Path(__file__).resolve().parents[1]
_READ = re.compile(r'(?:environ\.get|env\.get|\bget|_int\(env,|env_flag\(p, "[^"]+",)\s*\(?\s*"([A-Z][A-Z0-9_]{2,})"')
NEEDED = {
    "mlflow": {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"},
    "mlflask": {
        "AWS_BUCKET",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "MLFLOWSERVER_URL",
        "MLFLOW_EXP_NAME",
        "MLFLASK_STORE",
    },
    "mldash": {"MLFLOWSERVER_URL", "MLFLASK_URL", "MLFLOW_EXP_NAME", "MLFLOW_UI_URL"},
    "pipeline": {
        "AWS_BUCKET",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ENDPOINT_URL",
        "MLFLOWSERVER_URL",
        "MLFLASK_URL",
        "MLFLOW_EXP_NAME",
        "DATA_SOURCE",
        "MODEL_NAME",
        "DEPLOY_METRIC",
    },
}


def code_env_vars() -> set[str]:
    found = {env for _, env, _ in ENV_VARS}
    for folder in ("mlplatform", "apps", "jobs"):
        for path in (REPO / folder).rglob("*.py"):
            found |= set(_READ.findall(path.read_text()))
    return found


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
    for name, dependency in (("mlflask", "mlflow"), ("mldash", "mlflask"), ("pipeline", "mlflask")):
        assert services[name]["depends_on"][dependency]["condition"] == "service_healthy"
    assert services["pipeline"]["profiles"] == ["pipeline"]
    assert "s3://mlplatform/mlartifacts" in services["mlflow"]["command"]
    assert "apps.mlflask.wsgi:app" in services["mlflask"]["command"]


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
    assert out.returncode != 0 and "AWS_ACCESS_KEY_ID" in out.stderr


def test_every_service_gets_the_variables_it_needs(config):
    for service, needed in NEEDED.items():
        provided = set(config["services"][service].get("environment") or {})
        assert needed <= provided, f"{service} lacks {sorted(needed - provided)}"


def test_every_variable_the_code_reads_is_documented():
    documented = set(read_env_file(REPO / "env" / "example.env"))
    missing = code_env_vars() - documented - {"RANK"}  # RANK is set by torchrun, not by users
    assert not missing, f"add to env/example.env: {sorted(missing)}"
    assert {"AWS_BUCKET", "MLFLASK_TOKEN", "LEARNING_RATE", "MLFLASK_MAX_TEXTS"} <= code_env_vars()


def test_readme_documents_every_variable_and_both_commands():
    readme = (REPO / "README.md").read_text()
    missing = [name for name in read_env_file(REPO / "env" / "example.env") if f"`{name}`" not in readme]
    assert not missing, f"README's env table lacks {missing}"
    assert "make demo" in readme and "make test" in readme
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert (REPO / "docs" / "mldash.png").stat().st_size > 10_000
