"""One typed settings object: every environment variable the platform reads, with its default and help.

Each field is the lower-case name of its variable; job 3's hyperparameters are inherited from `TrainConfig`.
It is read once per process, at the entry point (`Settings.load`), and passed down as an argument.
`env/example.env` and the README's table are generated from (and checked against) this class:
`python -m mlplatform.settings --env` / `--markdown`. Nothing here connects to anything.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplatform.errors import ConfigError
from mlplatform.fields import describe_error, setting
from mlplatform.monitoring.config import MonitoringConfig
from mlplatform.names import check_alias, check_name
from mlplatform.serving.config import MLFlaskConfig
from mlplatform.training.config import TrainConfig

DEFAULT_BACKEND_STORE_URI = "sqlite:///sqlite_directory/mlflow.db"
DEFAULT_EXPERIMENT = "Movie-Comment-CLF"
DEFAULT_IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
_PREFIX_RE = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")


class Settings(TrainConfig, MLFlaskConfig, MonitoringConfig, BaseSettings):
    """Platform configuration. Secrets are excluded from repr so they never reach a log."""

    model_config = SettingsConfigDict(
        frozen=True, env_ignore_empty=True, str_strip_whitespace=True, extra="ignore", case_sensitive=False
    )

    aws_region_name: str = setting("us-east-1", "S3 region")
    aws_bucket: str | None = setting(None, "S3 bucket of the lake; unset = local folder LAKE_DIR")
    aws_access_key_id: str | None = setting(None, "S3 key id (required with AWS_BUCKET)", secret=True)
    aws_secret_access_key: str | None = setting(None, "S3 secret (required with AWS_BUCKET; never logged)", secret=True)
    aws_endpoint_url: str | None = setting(None, "S3-compatible endpoint, e.g. http://minio:9000")
    lake_dir: Path = setting(Path("lake"), "local lake folder when AWS_BUCKET is unset")
    lake_prefix: str = setting("imdb", "key prefix inside the bucket or folder")
    lake_last_writer_wins: bool = setting(
        False, "1 = accept an S3 store without conditional writes (two jobs publishing at once: the last one wins)"
    )
    dataset_generation: str | None = setting(
        None, "job 3 trains on this generation of clean/ (a pinned one: a version's `dataset_generation` tag)"
    )
    data_cache_dir: Path | None = setting(None, "download cache; unset = ~/.cache/mlplatform")
    launchpad_data_roots: str = setting("data", "folders a Dagster launchpad csv: source may read (comma-separated)")
    launchpad_url_hosts: str = setting(
        "ai.stanford.edu", "hosts a Dagster launchpad csv: URL or imdb_url may name (comma-separated)"
    )
    data_source: str = setting("imdb", "imdb | hf:<dataset> | csv:<path or URL> | sample[:N] (synthetic)")
    imdb_url: str = setting(DEFAULT_IMDB_URL, "URL of aclImdb_v1.tar.gz (a mirror works)")
    test_fraction: float = setting(0.2, "test share when a csv: source is a single file", gt=0, lt=1)
    mlflow_backend_store_uri: str = setting(
        DEFAULT_BACKEND_STORE_URI, "embedded tracking store (when no server is set)"
    )
    mlflow_default_artifactory_root: str | None = setting(
        None, "artifact root; unset = ./mlartifacts, or s3://$AWS_BUCKET/mlartifacts"
    )
    mlflowserver_url: str | None = setting(
        None, "tracking server, e.g. http://mlflow:5000; overrides the embedded store"
    )
    mlflow_exp_name: str = setting(DEFAULT_EXPERIMENT, "experiment name")
    mlflow_tracking_uri: str | None = setting(
        None,
        "MLflow's standard name: used when MLFLOWSERVER_URL (http) or MLFLOW_BACKEND_STORE_URI (other URIs) is unset",
    )
    mlflow_experiment_name: str | None = setting(None, "MLflow's standard name: used when MLFLOW_EXP_NAME is unset")
    mlflow_tracking_username: str | None = setting(
        None, "MLflow's standard name: this service's user on an MLflow server with basic auth"
    )
    mlflow_tracking_password: str | None = setting(None, "MLflow's standard name: that user's password", secret=True)
    mlflow_ui_url: str | None = setting(None, "MLflow UI base for run links; unset = MLFLOWSERVER_URL or :5000")
    git_commit: str | None = setting(None, "commit tagged on runs when the code is no git checkout (Docker build arg)")
    onnx_export: Literal["fp32", "int8"] = setting(
        "int8", "graphs in each run's servable: fp32, or int8 too (served where the test split approves it)"
    )
    rank: int = setting(0, "set by torchrun/accelerate: this process's rank; only rank 0 logs to MLflow", ge=0)
    local_rank: int = setting(0, "set by torchrun/accelerate: this process's GPU on its machine", ge=0)
    world_size: int = setting(1, "set by torchrun/accelerate: processes training together (data-parallel)", ge=1)
    deploy_metric: str = setting("val_f1", 'metric that picks the run ("loss" metrics are minimised)')
    sweep_storage: str = setting(
        "sqlite:///sqlite_directory/optuna.db",
        "Optuna storage of job 3's sweeps (a killed sweep resumes from it); share a database to sweep on many machines",
        secret=True,  # a database URL may hold a password
    )
    model_name: str = setting("movie-sentiment", "name in MLFlask and the Model Registry")
    model_alias: str = setting("champion", "registry alias that job 4 and MLDash move, and MLFlask follows")
    challenger_alias: str = setting("challenger", "registry alias of the model the promotion gate is testing")
    promotion_candidates: int = setting(3, "best runs by DEPLOY_METRIC that the gate scores on the shared set", ge=1)
    promotion_min_gain: float = setting(
        0.0, "how much the challenger must beat the champion by on the shared set (in DEPLOY_METRIC's units)"
    )
    promotion_eval_rows: int = setting(
        2000, "rows of clean/ test the gate scores every contender on (a fixed sample); 0 = all", ge=0
    )
    input_texts: str | None = setting(
        None, "JSON list or one text per line; unset = the sample project's four sentences"
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = setting(
        "INFO", "how much the jobs say; DEBUG (or --verbose) adds tracebacks of unexpected errors"
    )
    pipeline_retries: int = setting(0, "retries of a failed asset, with exponential backoff from 2 s", ge=0, le=10)
    label_balance_min: float = setting(
        0.3, "smallest share of either label per split that the label_balance check accepts", ge=0, le=0.5
    )
    retrain_cron: str = setting("0 3 * * 1", "cron of the weekly retraining schedule (off until turned on in the UI)")
    dagster_home: Path | None = setting(
        None, "Dagster instance folder (run history, schedules); unset = runs of the CLI runner are not kept"
    )
    dagster_port: int = setting(3000, "port of the Dagster UI that make demo starts", ge=1, le=65535)
    mldash_host: str = setting("127.0.0.1", "bind address of python -m apps.mldash")
    mldash_port: int = setting(8050, "port of python -m apps.mldash", ge=1, le=65535)
    mldash_users: str | None = setting(
        None, "user:password,... for MLDash's login; required when MLDASH_HOST is not loopback", secret=True
    )
    mldash_allowed_hosts: str = setting(
        "127.0.0.1,localhost", "Host header values MLDash answers (comma-separated, ports ignored); * = any"
    )

    @model_validator(mode="before")
    @classmethod
    def _standard_mlflow_names(cls, values: Any) -> Any:
        """MLflow's own MLFLOW_TRACKING_URI / MLFLOW_EXPERIMENT_NAME fill in for unset Saagie names."""
        if not isinstance(values, dict):
            return values
        values = dict(values)
        uri = values.get("mlflow_tracking_uri")
        if uri and not values.get("mlflowserver_url") and not values.get("mlflow_backend_store_uri"):
            remote = str(uri).startswith(("http://", "https://"))
            values["mlflowserver_url" if remote else "mlflow_backend_store_uri"] = uri
        if values.get("mlflow_experiment_name") and not values.get("mlflow_exp_name"):
            values["mlflow_exp_name"] = values["mlflow_experiment_name"]
        return values

    @field_validator("lake_prefix")
    @classmethod
    def _lake_prefix(cls, value: str) -> str:
        value = value.strip("/")
        if not _PREFIX_RE.fullmatch(value) or ".." in value.split("/"):
            raise ValueError("may hold only letters, digits, '_', '.', '-', '/'")
        return value

    @field_validator("mlflask_url", "mlflowserver_url", "mlflow_ui_url", "aws_endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/") if value else value

    @field_validator("model_name", "model_alias", "challenger_alias")
    @classmethod
    def _registry_names(cls, value: str, info) -> str:
        check = check_name if info.field_name == "model_name" else check_alias
        try:
            return check(value)
        except ConfigError as exc:
            raise ValueError("must" + str(exc).split(" must", 1)[1]) from None

    @field_validator("retrain_cron")
    @classmethod
    def _five_cron_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError("expected a cron expression of 5 fields, e.g. '0 3 * * 1'")
        return value

    def model_post_init(self, context: Any) -> None:
        """Fail fast on combinations that would only break later, deep inside a job."""
        if self.aws_bucket:
            for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
                if not getattr(self, name.lower()):
                    raise ConfigError(f"AWS_BUCKET is set but {name} is missing")
        if bool(self.aws_access_key_id) != bool(self.aws_secret_access_key):
            missing = "AWS_SECRET_ACCESS_KEY" if self.aws_access_key_id else "AWS_ACCESS_KEY_ID"
            raise ConfigError(f"{missing} is missing: AWS credentials come as a pair")
        self.deployments  # noqa: B018 - parsed now, so a typo stops the server at start
        self.shadows  # noqa: B018
        self.mldash_logins  # noqa: B018

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        # An env file named on the command line (--env-file) is the more specific choice: it wins over the environment.
        return init_settings, dotenv_settings, env_settings, file_secret_settings

    @classmethod
    def load(cls, env_files: Iterable[str | Path] = (), **overrides: Any) -> Settings:
        """The environment (and `env_files`, read as data: no shell, no expansion), validated: for entry points.

        A bad value raises one ConfigError naming the variable and what it expected."""
        files = tuple(Path(f) for f in env_files)
        for path in files:
            if not path.is_file():
                raise ConfigError(f"env file {path} does not exist")
        try:
            return cls(_env_file=files or None, **overrides)
        except ValidationError as exc:
            raise ConfigError(describe_error(exc, overrides, model=Settings)) from None

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> Settings:
        """Settings from variables given as a mapping (VARIABLE or field names), ignoring the environment."""
        fields = {key.lower(): value for key, value in values.items() if key.lower() in cls.model_fields}
        fields = {k: v for k, v in fields.items() if not (isinstance(v, str) and not v.strip())}
        try:
            return cls.model_validate(fields)
        except ValidationError as exc:
            raise ConfigError(describe_error(exc, fields, model=Settings)) from None

    def replace(self, **changes: Any) -> Settings:
        """A copy with some fields changed, validated by the same rules (launchpad config, flags)."""
        return type(self).from_mapping({**self.explicit(), **changes})

    def explicit(self) -> dict[str, Any]:
        """The fields that were set (not defaulted), by field name."""
        return {name: getattr(self, name) for name in self.model_fields_set}

    def child_environ(self, **extra: str) -> dict[str, str]:
        """The environment of a child process (a server this one starts): this process's, then the set fields as
        VARIABLE=value (env files included), then `extra`."""
        fields = {
            name.upper(): ("1" if value else "0") if isinstance(value, bool) else str(value)
            for name, value in self.explicit().items()
            if value is not None
        }
        return {**os.environ, **fields, **extra}

    @classmethod
    def parse_value(cls, name: str, raw: str) -> Any:
        """One variable's value checked by its field's rules (type, bounds, validators), for command-line flags."""
        try:
            return getattr(cls.model_validate({name: raw}), name)
        except ValidationError as exc:
            raise ConfigError(describe_error(exc, {name: raw}, name, model=Settings)) from None

    def from_environment(self, name: str) -> bool:
        """Whether this field's value is its environment variable's (so Dagster can name the variable instead)."""
        return os.environ.get(name.upper(), "").strip() == str(getattr(self, name))

    @property
    def mlflask_is_loopback(self) -> bool:
        return is_loopback(self.mlflask_host)

    @property
    def mldash_is_loopback(self) -> bool:
        return is_loopback(self.mldash_host)

    @property
    def mldash_logins(self) -> dict[str, str]:
        """MLDASH_USERS as {user: password}."""
        pairs = {}
        for item in filter(None, (part.strip() for part in (self.mldash_users or "").split(","))):
            user, sep, password = item.partition(":")
            if not sep or not user or not password:
                raise ConfigError("MLDASH_USERS must be user:password pairs, comma-separated")
            pairs[user] = password
        return pairs

    @property
    def cache_dir(self) -> Path:
        return self.data_cache_dir or Path.home() / ".cache" / "mlplatform"

    @property
    def lake_location(self) -> str:
        """Where the lake lives, as a URI a person can read (no credentials)."""
        if self.aws_bucket:
            return f"s3://{self.aws_bucket}/{self.lake_prefix}"
        return f"{self.lake_dir.resolve().as_uri()}/{self.lake_prefix}"

    @property
    def artifact_root(self) -> str:
        """MLflow artifact root for the embedded store: S3 when a bucket is set, else a local folder."""
        if self.mlflow_default_artifactory_root:
            return self.mlflow_default_artifactory_root
        if self.aws_bucket:
            return f"s3://{self.aws_bucket}/mlartifacts"
        return Path("mlartifacts").resolve().as_uri()


def cores() -> int:
    """CPU cores this process may use (container and taskset limits included)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")
