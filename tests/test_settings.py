import pytest

from mlplatform.errors import ConfigError
from mlplatform.settings import DEFAULT_BACKEND_STORE_URI, DEFAULT_EXPERIMENT, Settings


def test_embedded_defaults():
    settings = Settings.from_env({})
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
        Settings.from_env(env)


def test_secrets_never_in_repr():
    settings = Settings.from_env(
        {"AWS_BUCKET": "b", "AWS_ACCESS_KEY_ID": "AKIDVALUE", "AWS_SECRET_ACCESS_KEY": "s3cr3t-value"}
    )
    text = repr(settings) + str(settings)
    assert "s3cr3t-value" not in text and "AKIDVALUE" not in text
    assert settings.artifact_root == "s3://b/mlartifacts"
    assert settings.lake_location == "s3://b/imdb"
