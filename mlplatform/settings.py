"""One typed settings object: every environment variable the platform reads, with its default and help.

Each field is the lower-case name of its variable. `env/example.env` and the README's table are generated from
(and checked against) this class: `python -m mlplatform.settings --env` / `--markdown`.
Nothing here connects to anything: clients are built by the functions that need them.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlplatform.errors import ConfigError
from mlplatform.training.pretrained import DEFAULT_MODEL

DEFAULT_BACKEND_STORE_URI = "sqlite:///sqlite_directory/mlflow.db"
DEFAULT_EXPERIMENT = "Movie-Comment-CLF"
DEFAULT_IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
_PREFIX_RE = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
# The first field of each group, for env/example.env and the README table.
_SECTIONS = {
    "aws_region_name": "Lake",
    "data_source": "Job 1: data preparation",
    "mlflow_backend_store_uri": "MLflow",
    "pretrained_model": "Job 3: fine-tune (flags override; see --help)",
    "deploy_metric": "Jobs 4 and 5: deployment and interface checks",
    "pipeline_retries": "Pipeline (Dagster)",
    "mlflask_url": "MLFlask",
    "mldash_host": "MLDash",
}
_SECRET = {"repr": False, "json_schema_extra": {"secret": True}}


def _f(default: Any, help: str, **kwargs) -> Any:
    return Field(default, description=help, **kwargs)


class Settings(BaseSettings):
    """Platform configuration. Secrets are excluded from repr so they never reach a log."""

    model_config = SettingsConfigDict(
        frozen=True, env_ignore_empty=True, str_strip_whitespace=True, extra="ignore", case_sensitive=False
    )

    aws_region_name: str = _f("us-east-1", "S3 region")
    aws_bucket: str | None = _f(None, "S3 bucket of the lake; unset = local folder LAKE_DIR")
    aws_access_key_id: str | None = _f(None, "S3 key id (required with AWS_BUCKET)", **_SECRET)
    aws_secret_access_key: str | None = _f(None, "S3 secret (required with AWS_BUCKET; never logged)", **_SECRET)
    aws_endpoint_url: str | None = _f(None, "S3-compatible endpoint, e.g. http://minio:9000")
    lake_dir: Path = _f(Path("lake"), "local lake folder when AWS_BUCKET is unset")
    lake_prefix: str = _f("imdb", "key prefix inside the bucket or folder")
    data_cache_dir: Path | None = _f(None, "download cache; unset = ~/.cache/mlplatform")
    data_source: str = _f("imdb", "imdb | hf:<dataset> | csv:<path or URL> | sample[:N] (synthetic)")
    imdb_url: str = _f(DEFAULT_IMDB_URL, "URL of aclImdb_v1.tar.gz (a mirror works)")
    test_fraction: float = _f(0.2, "test share when a csv: source is a single file", gt=0, lt=1)
    seed: int = _f(42, "seed for splits, the sample generator, init and shuffling")
    mlflow_backend_store_uri: str = _f(DEFAULT_BACKEND_STORE_URI, "embedded tracking store (when no server is set)")
    mlflow_default_artifactory_root: str | None = _f(
        None, "artifact root; unset = ./mlartifacts, or s3://$AWS_BUCKET/mlartifacts"
    )
    mlflowserver_url: str | None = _f(None, "tracking server, e.g. http://mlflow:5000; overrides the embedded store")
    mlflow_exp_name: str = _f(DEFAULT_EXPERIMENT, "experiment name")
    mlflow_tracking_uri: str | None = _f(
        None,
        "MLflow's standard name: used when MLFLOWSERVER_URL (http) or MLFLOW_BACKEND_STORE_URI (other URIs) is unset",
    )
    mlflow_experiment_name: str | None = _f(None, "MLflow's standard name: used when MLFLOW_EXP_NAME is unset")
    mlflow_ui_url: str | None = _f(None, "MLflow UI base for run links; unset = MLFLOWSERVER_URL or :5000")
    git_commit: str | None = _f(None, "commit tagged on runs when the code is no git checkout (Docker build arg)")
    pretrained_model: str = _f(DEFAULT_MODEL, "Hugging Face id or folder; the default ships offline", min_length=1)
    learning_rate: float = _f(5e-5, "peak AdamW learning rate", gt=0, lt=1)
    epochs: int = _f(1, "passes over the training rows", ge=1)
    batch_size: int = _f(16, "rows per step", ge=1)
    max_length: int = _f(128, "tokens kept per review in training", ge=8, le=4096)
    inference_max_length: int = _f(
        256,
        "tokens kept per review when predicting (test metrics, logged model, MLFlask); capped at the model's",
        ge=8,
        le=4096,
    )
    evals_per_epoch: int = _f(4, "validation passes per epoch, logged by step", ge=1, le=100)
    weight_decay: float = _f(0.01, "AdamW weight decay", ge=0)
    warmup_ratio: float = _f(0.1, "share of steps with linear warm-up", ge=0, lt=1)
    train_samples: int = _f(4000, "cap on train rows, stratified (0 = all)", ge=0)
    test_samples: int = _f(1000, "cap on test rows, stratified (0 = all)", ge=0)
    val_fraction: float = _f(0.1, "validation share held out of train, stratified", gt=0, lt=1)
    onnx_export: Literal["none", "fp32", "int8"] = _f(
        "fp32", "ONNX export logged with each run: none, fp32, or int8 (fp32 and int8)"
    )
    rank: int = _f(0, "set by torchrun/accelerate: only rank 0 logs to MLflow", ge=0)
    deploy_metric: str = _f("val_f1", 'metric that picks the run ("loss" metrics are minimised)')
    model_name: str = _f(
        "movie-sentiment",
        "name in MLFlask and the Model Registry",
        pattern=r"^[A-Za-z0-9_.-]*[A-Za-z0-9_-][A-Za-z0-9_.-]*$",
        max_length=64,
    )
    model_alias: str = _f(
        "champion",
        "registry alias that job 4 and MLDash move, and MLFlask follows",
        pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$",
    )
    input_texts: str | None = _f(None, "JSON list or one text per line; unset = the sample project's four sentences")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = _f(
        "INFO", "how much the jobs say; DEBUG (or --verbose) adds tracebacks of unexpected errors"
    )
    pipeline_retries: int = _f(0, "retries of a failed asset, with exponential backoff from 2 s", ge=0, le=10)
    label_balance_min: float = _f(
        0.3, "smallest share of either label per split that the label_balance check accepts", ge=0, le=0.5
    )
    retrain_cron: str = _f("0 3 * * 1", "cron of the weekly retraining schedule (off until turned on in the UI)")
    dagster_home: Path | None = _f(
        None, "Dagster instance folder (run history, schedules); unset = runs of the CLI runner are not kept"
    )
    dagster_port: int = _f(3000, "port of the Dagster UI that make demo starts", ge=1, le=65535)
    mlflask_log: Path = _f(Path("mlflask.log"), "log file of an MLFlask the runner starts itself")
    mlflask_url: str = _f("http://127.0.0.1:5001", "where jobs 4-5 and MLDash reach MLFlask")
    mlflask_token: str | None = _f(None, "bearer token required for POST/DELETE /models when set", **_SECRET)
    mlflask_store: Path = _f(Path("mlflask_store"), "folder of deployed models and their state")
    mlflask_host: str = _f("127.0.0.1", "bind address of python -m apps.mlflask (0.0.0.0 in compose)")
    mlflask_port: int = _f(5001, "port of python -m apps.mlflask", ge=1, le=65535)
    mlflask_workers: int = _f(1, "gunicorn workers of python -m apps.mlflask", ge=1, le=64)
    mlflask_threads: int = _f(8, "threads per worker (concurrent requests share forward passes)", ge=1, le=256)
    mlflask_max_body: int = _f(1 << 20, "largest request body in bytes (413 above)", ge=1024)
    mlflask_max_texts: int = _f(64, "most texts per request (413 above)", ge=1)
    mlflask_quantize: bool = _f(False, "1 = int8 (dynamic quantization) on either backend: faster, approximate")
    mlflask_backend: Literal["onnx", "torch"] | None = _f(
        None, "onnx | torch; unset = onnx where onnxruntime imports, else torch"
    )
    mlflask_batch_wait_ms: int = _f(5, "longest wait for concurrent requests to join a batch", ge=0, le=1000)
    mlflask_max_batch: int = _f(32, "most texts per forward pass", ge=1, le=1024)
    mlflask_max_models: int = _f(8, "models kept loaded per worker; the least recently used is unloaded", ge=1)
    mlflask_max_queue: int = _f(256, "requests waiting per model; beyond it the answer is 503 + Retry-After", ge=1)
    mlflask_predict_timeout: float = _f(60, "seconds a prediction may wait and run before a 503", gt=0)
    mlflask_log_max_bytes: int = _f(8 << 20, "size of the action log before it rotates (one old file kept)", ge=4096)
    mlflask_allow_open: bool = _f(False, "1 = allow a non-loopback MLFLASK_HOST without MLFLASK_TOKEN")
    mlflask_follow_interval: float = _f(30, "seconds between re-resolving alias deployments; 0 = off", ge=0)
    mlflask_deployments: str | None = _f(
        None, "deployments rebuilt from the registry at start: name=models:/name@alias,... (comma-separated)"
    )
    prometheus_multiproc_dir: Path | None = _f(
        None, "prometheus_client's shared folder for worker metrics; python -m apps.mlflask sets it"
    )
    mlflask_threads_per_worker: int = _f(
        0, "compute threads per MLFlask worker; 0 = TORCH_NUM_THREADS, else cores / MLFLASK_WORKERS", ge=0
    )
    torch_num_threads: int = _f(0, "torch intra-op threads per process; 0 = torch's choice", ge=0)
    mldash_host: str = _f("127.0.0.1", "bind address of python -m apps.mldash")
    mldash_port: int = _f(8050, "port of python -m apps.mldash", ge=1, le=65535)
    mldash_users: str | None = _f(
        None, "user:password,... for MLDash's login; required when MLDASH_HOST is not loopback", **_SECRET
    )
    mldash_allowed_hosts: str = _f(
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
    def _strip_slashes(cls, value: str) -> str:
        return value.strip("/")

    @field_validator("mlflask_url", "mlflowserver_url", "mlflow_ui_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

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
        if not _PREFIX_RE.fullmatch(self.lake_prefix) or ".." in self.lake_prefix.split("/"):
            raise ConfigError(f"LAKE_PREFIX {self.lake_prefix!r} may hold only letters, digits, '_', '.', '-', '/'")
        self.deployments  # noqa: B018 - parsed now, so a typo stops the server at start
        self.mldash_logins  # noqa: B018
        for name in ("AWS_ENDPOINT_URL", "MLFLOWSERVER_URL", "MLFLASK_URL", "MLFLOW_UI_URL"):
            url = getattr(self, name.lower())
            if url and not url.startswith(("http://", "https://")):
                raise ConfigError(f"{name} must start with http:// or https://")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read and validate; a bad value raises one ConfigError naming the variable and what it expected."""
        env = os.environ if environ is None else environ
        values = {key.lower(): value for key, value in env.items() if key.lower() in cls.model_fields and value.strip()}
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, values)) from None

    @classmethod
    def parse_value(cls, name: str, raw: str) -> Any:
        """One variable's value checked by its field's type and bounds (for command-line flags)."""
        try:
            return _adapter(name).validate_python(raw)
        except ValidationError as exc:
            raise ConfigError(_describe(exc, {name: raw}, name)) from None

    @property
    def serving_backend(self) -> str:
        """MLFLASK_BACKEND, or onnx where onnxruntime imports."""
        from mlplatform import onnx_backend

        return self.mlflask_backend or ("onnx" if onnx_backend.available() else "torch")

    @property
    def mlflask_is_loopback(self) -> bool:
        return _is_loopback(self.mlflask_host)

    @property
    def mldash_is_loopback(self) -> bool:
        return _is_loopback(self.mldash_host)

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
    def deployments(self) -> dict[str, str]:
        """MLFLASK_DEPLOYMENTS as {served name: models:/ URI}."""
        pairs = {}
        for item in filter(None, (part.strip() for part in (self.mlflask_deployments or "").split(","))):
            name, sep, uri = item.partition("=")
            if not sep or not name.strip() or not uri.strip().startswith("models:/"):
                raise ConfigError(f"MLFLASK_DEPLOYMENTS item {item!r} is not name=models:/<name>@<alias> or /<version>")
            pairs[name.strip()] = uri.strip()
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

    def export_s3_for_mlflow(self) -> None:
        """MLflow's S3 artifact client reads its endpoint and credentials from the environment only."""
        exported = {
            "MLFLOW_S3_ENDPOINT_URL": self.aws_endpoint_url,
            "AWS_ACCESS_KEY_ID": self.aws_access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.aws_secret_access_key,
            "AWS_DEFAULT_REGION": self.aws_region_name,
        }
        os.environ.update({k: v for k, v in exported.items() if v})
        # MLflow's defaults retry an unreachable server for minutes; a job should fail in seconds and say why.
        for name, value in (
            ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2"),
            ("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1"),
            ("MLFLOW_HTTP_REQUEST_TIMEOUT", "60"),
        ):
            os.environ.setdefault(name, value)


def cores() -> int:
    """CPU cores this process may use (container and taskset limits included)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


def environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus `extra`: what a child process (a job, a server) is given."""
    return {**os.environ, **(extra or {})}


def update_environ(values: Mapping[str, str], override: bool = True) -> None:
    """Put `values` in this process's environment, for code that runs here and reads it (in-process steps)."""
    for key, value in values.items():
        if override or key not in os.environ:
            os.environ[key] = value


def _adapter(name: str) -> TypeAdapter:
    field = Settings.model_fields[name]
    return TypeAdapter(Annotated[field.annotation, *field.metadata] if field.metadata else field.annotation)


def _describe(exc: ValidationError, values: Mapping[str, Any], name: str | None = None) -> str:
    error = exc.errors()[0]
    field = name or str(error["loc"][0])
    variable = field.upper()
    message = error["msg"].removeprefix("Value error, ")
    if message.startswith("Input should be "):
        message = "expected " + message.removeprefix("Input should be ")
    shown = "<hidden>" if _is_secret(field) else repr(values.get(field))
    return f"{variable}={shown} is not valid: {message[0].lower()}{message[1:]}"


def _is_secret(name: str) -> bool:
    field = Settings.model_fields.get(name)
    return bool(field and isinstance(field.json_schema_extra, dict) and field.json_schema_extra.get("secret"))


def variables() -> list[tuple[str, str, str, str]]:
    """(VARIABLE, default as text, help, section) for every setting, in declaration order."""
    rows = []
    section = ""
    for name, field in Settings.model_fields.items():
        section = _SECTIONS.get(name, section)
        default = field.default
        shown = "" if default is None else ("0" if default is False else str(default))
        rows.append((name.upper(), shown, field.description or "", section))
    return rows


def render_env_file() -> str:
    """env/example.env, as generated from the fields."""
    lines = ["# Every variable the platform reads. Generated by: python -m mlplatform.settings --env > env/example.env"]
    section = None
    for name, default, help, group in variables():
        if group != section:
            lines += ["", f"# --- {group} ---"]
            section = group
        lines.append(
            f"{name + '=' + default:<37}# {help}" if len(name + default) < 36 else f"{name}={default}  # {help}"
        )
    return "\n".join(lines) + "\n"


def render_markdown() -> str:
    """The README's table of variables."""
    rows = ["| variable | default | what it does |", "|---|---|---|"]
    section = None
    for name, default, help, group in variables():
        if group != section:
            rows.append(f"| **{group}** | | |")
            section = group
        rows.append(f"| `{name}` | {f'`{default}`' if default else '—'} | {help.replace('|', '/')} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown() if "--markdown" in sys.argv else render_env_file())
