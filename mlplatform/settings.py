"""One typed settings object, read from the environment in one place.

Nothing here connects to anything: clients are built by the functions that need them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlplatform.errors import ConfigError

DEFAULT_BACKEND_STORE_URI = "sqlite:///sqlite_directory/mlflow.db"
DEFAULT_EXPERIMENT = "Movie-Comment-CLF"
_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")


@dataclass(frozen=True)
class Settings:
    """Platform configuration. Secrets are excluded from repr so they never reach a log."""

    aws_region_name: str = "us-east-1"
    aws_bucket: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_endpoint_url: str | None = None
    lake_dir: Path = Path("lake")
    lake_prefix: str = "imdb"
    cache_dir: Path = Path.home() / ".cache" / "mlplatform"
    mlflow_backend_store_uri: str = DEFAULT_BACKEND_STORE_URI
    mlflow_default_artifactory_root: str | None = None
    mlflowserver_url: str | None = None
    mlflask_url: str = "http://127.0.0.1:5001"
    mlflask_token: str | None = field(default=None, repr=False)
    mlflow_exp_name: str = DEFAULT_EXPERIMENT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate settings; raise ConfigError naming the offending variable."""
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        settings = cls(
            aws_region_name=get("AWS_REGION_NAME") or "us-east-1",
            aws_bucket=get("AWS_BUCKET"),
            aws_access_key_id=get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=get("AWS_SECRET_ACCESS_KEY"),
            aws_endpoint_url=get("AWS_ENDPOINT_URL"),
            lake_dir=Path(get("LAKE_DIR") or "lake"),
            lake_prefix=(get("LAKE_PREFIX") or "imdb").strip("/"),
            cache_dir=Path(get("DATA_CACHE_DIR") or Path.home() / ".cache" / "mlplatform"),
            mlflow_backend_store_uri=get("MLFLOW_BACKEND_STORE_URI") or DEFAULT_BACKEND_STORE_URI,
            mlflow_default_artifactory_root=get("MLFLOW_DEFAULT_ARTIFACTORY_ROOT"),
            mlflowserver_url=get("MLFLOWSERVER_URL"),
            mlflask_url=(get("MLFLASK_URL") or "http://127.0.0.1:5001").rstrip("/"),
            mlflask_token=get("MLFLASK_TOKEN"),
            mlflow_exp_name=get("MLFLOW_EXP_NAME") or DEFAULT_EXPERIMENT,
        )
        settings.validate()
        return settings

    def validate(self) -> None:
        """Fail fast on combinations that would only break later, deep inside a job."""
        if self.aws_bucket:
            for name, value in (
                ("AWS_ACCESS_KEY_ID", self.aws_access_key_id),
                ("AWS_SECRET_ACCESS_KEY", self.aws_secret_access_key),
            ):
                if not value:
                    raise ConfigError(f"AWS_BUCKET is set but {name} is missing")
        if bool(self.aws_access_key_id) != bool(self.aws_secret_access_key):
            missing = "AWS_SECRET_ACCESS_KEY" if self.aws_access_key_id else "AWS_ACCESS_KEY_ID"
            raise ConfigError(f"{missing} is missing: AWS credentials come as a pair")
        if self.aws_endpoint_url and not self.aws_endpoint_url.startswith(("http://", "https://")):
            raise ConfigError("AWS_ENDPOINT_URL must start with http:// or https://")
        if not _PREFIX_RE.match(self.lake_prefix) or ".." in self.lake_prefix.split("/"):
            raise ConfigError(f"LAKE_PREFIX {self.lake_prefix!r} may hold only letters, digits, '_', '.', '-', '/'")
        for name, url in (("MLFLOWSERVER_URL", self.mlflowserver_url), ("MLFLASK_URL", self.mlflask_url)):
            if url and not url.startswith(("http://", "https://")):
                raise ConfigError(f"{name} must start with http:// or https://")

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
