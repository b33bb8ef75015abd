import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from dotenv import dotenv_values

from mlplatform.errors import ConfigError
from mlplatform.settings import (
    DEFAULT_BACKEND_STORE_URI,
    DEFAULT_EXPERIMENT,
    Settings,
)
from mlplatform.settings_docs import render_env_file, render_markdown


def test_embedded_defaults():
    settings = Settings.from_mapping({})
    assert settings.aws_bucket is None
    assert settings.mlflow_backend_store_uri == DEFAULT_BACKEND_STORE_URI == "sqlite:///sqlite_directory/mlflow.db"
    assert settings.mlflow_exp_name == DEFAULT_EXPERIMENT == "Movie-Comment-CLF"
    assert settings.lake_prefix == "imdb"
    assert str(settings.lake_dir) == "lake"
    assert settings.artifact_root.startswith("file://")


@pytest.mark.parametrize(
    "env, missing",
    [
        ({"AWS_BUCKET": "b", "AWS_ACCESS_KEY_ID": "k"}, "AWS_BUCKET is set but AWS_SECRET_ACCESS_KEY is missing"),
        ({"AWS_BUCKET": "b", "AWS_SECRET_ACCESS_KEY": "s"}, "AWS_BUCKET is set but AWS_ACCESS_KEY_ID is missing"),
        ({"AWS_ACCESS_KEY_ID": "k"}, "AWS_SECRET_ACCESS_KEY is missing"),
        ({"AWS_ENDPOINT_URL": "minio:9000"}, "AWS_ENDPOINT_URL"),
        ({"LAKE_PREFIX": "../etc"}, "LAKE_PREFIX"),
        ({"MLFLOWSERVER_URL": "ftp://x"}, "MLFLOWSERVER_URL"),
    ],
)
def test_wrong_combinations_name_the_variable(env, missing):
    with pytest.raises(ConfigError, match=missing):
        Settings.from_mapping(env)


def test_secrets_never_in_repr():
    settings = Settings.from_mapping(
        {"AWS_BUCKET": "b", "AWS_ACCESS_KEY_ID": "AKIDVALUE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}
    )
    text = repr(settings) + str(settings)
    assert "s3cr3t-value" not in text and "AKIDVALUE" not in text
    assert settings.artifact_root == "s3://b/mlartifacts"
    assert settings.lake_location == "s3://b/imdb"


# --- one settings object: every variable in one place, documented, checked ------------------------------------------

REPO = Path(__file__).resolve().parents[1]
CODE = [path for folder in ("mlplatform", "apps", "jobs") for path in (REPO / folder).rglob("*.py")]
NUMERIC = [name.upper() for name, f in Settings.model_fields.items() if f.annotation in (int, float)]


def test_the_environment_is_read_only_by_the_settings_module():
    readers = [
        str(path.relative_to(REPO))
        for path in CODE
        if re.search(r"os\.environ|os\.getenv|getenv\(", path.read_text()) and path.name != "settings.py"
    ]
    assert readers == []


def test_example_env_is_generated_from_the_settings():
    assert (REPO / "env" / "example.env").read_text() == render_env_file()
    names = set(dotenv_values(REPO / "env" / "example.env"))
    assert names == {name.upper() for name in Settings.model_fields}


def test_readme_table_lists_exactly_the_settings():
    readme = (REPO / "README.md").read_text()
    assert render_markdown() in readme, "regenerate it: python -m mlplatform.settings_docs --markdown"
    in_table = set(re.findall(r"^\| `([A-Z][A-Z0-9_]+)` \|", readme, flags=re.M))
    assert in_table == {name.upper() for name in Settings.model_fields}


def test_every_env_file_holds_only_known_variables():
    known = {name.upper() for name in Settings.model_fields} | {"MLFLOW_S3_ENDPOINT_URL"}
    for path in (REPO / "env" / "local.env", REPO / "env" / "example.env"):
        assert set(dotenv_values(path)) <= known, path.name


@pytest.mark.parametrize("name", NUMERIC)
def test_a_bad_number_names_the_variable_and_what_it_expected(name):
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({name: "two"})
    message = str(caught.value)
    assert message.startswith(f"{name}='two' is not valid: expected a valid") and "\n" not in message


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"MLFLASK_PORT": "70000"}, "less than or equal to 65535"),
        ({"EPOCHS": "0"}, "greater than or equal to 1"),
        ({"LEARNING_RATE": "2"}, "less than 1"),
        ({"MLFLASK_QUANTIZE": "maybe"}, "a valid boolean"),
    ],
)
def test_out_of_range_values_say_what_they_expected(env, expected):
    with pytest.raises(ConfigError, match=expected):
        Settings.from_mapping(env)


def test_secret_values_never_appear_in_errors():
    with pytest.raises(ConfigError) as caught:
        Settings.from_mapping({"AWS_BUCKET": "b", "AWS_ACCESS_KEY_ID": "AKIDVALUE"})
    assert "AKIDVALUE" not in str(caught.value)


def test_types_and_blank_values():
    settings = Settings.from_mapping({"MLFLASK_QUANTIZE": "yes", "MLFLASK_WORKERS": " 3 ", "AWS_BUCKET": "  "})
    assert settings.mlflask_quantize is True and settings.mlflask_workers == 3 and settings.aws_bucket is None


@pytest.mark.parametrize(
    "command",
    [
        [sys.executable, "-m", "apps.mlflask"],
        [sys.executable, "-m", "apps.mldash"],
        [sys.executable, str(REPO / "jobs" / "finetune.py"), "--help"],
        [sys.executable, str(REPO / "jobs" / "run_pipeline.py")],
    ],
    ids=["mlflask", "mldash", "finetune", "pipeline"],
)
def test_entry_points_stop_with_one_line_on_a_bad_value(command, tmp_path):
    env = {**os.environ, "MLFLASK_WORKERS": "two", "MLDASH_PORT": "two", "EPOCHS": "two", "PIPELINE_RETRIES": "x"}
    out = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 1
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "is not valid: expected" in lines[0], out.stderr


def test_a_bad_flag_is_checked_by_the_same_rules(tmp_path):
    out = subprocess.run(
        [sys.executable, str(REPO / "jobs" / "finetune.py"), "--epochs", "0"],
        env=dict(os.environ),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 2 and "--epochs" in out.stderr and "greater than or equal to 1" in out.stderr


@pytest.mark.parametrize("app", ["mlflask", "mldash"])
def test_the_servers_answer_help_without_starting(app):
    out = subprocess.run(
        [sys.executable, "-m", f"apps.{app}", "--help"], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert out.returncode == 0 and out.stdout.startswith("usage:"), out.stderr
    assert f"{app.upper()}_PORT" in out.stdout, "the help names the variables that configure it"
    assert "Booting worker" not in out.stdout + out.stderr and "Listening at" not in out.stdout + out.stderr
