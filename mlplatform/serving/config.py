"""MLFlask's settings: declared here, beside the serving code; `Settings` inherits them as MLFLASK_* variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from mlplatform.errors import ConfigError
from mlplatform.fields import setting
from mlplatform.names import ModelRef, check_name


class MLFlaskConfig(BaseModel):
    """How MLFlask binds, guards, batches and follows the registry."""

    model_config = ConfigDict(frozen=True)

    mlflask_log: Path = setting(Path("mlflask.log"), "log file of an MLFlask the runner starts itself")
    mlflask_url: str = setting("http://127.0.0.1:5001", "where jobs 4-5 and MLDash reach MLFlask")
    mlflask_token: str | None = setting(None, "bearer token required for POST/DELETE /models when set", secret=True)
    mlflask_feedback_token: str | None = setting(
        None, "bearer token of POST /feedback (unset: feedback is off where MLFLASK_TOKEN is set)", secret=True
    )
    mlflask_behind_proxy: bool = setting(
        False, "1 = a reverse proxy fronts MLFlask: the first X-Forwarded-For hop names the client (feedback's sender)"
    )
    mlflask_feedback_rate: int = setting(
        6000, "feedback labels one sender may post per minute, per worker (429 beyond)", ge=1
    )
    mlflask_store: Path = setting(Path("mlflask_store"), "folder of deployed models and their state")
    mlflask_host: str = setting("127.0.0.1", "bind address of python -m apps.mlflask (0.0.0.0 in compose)")
    mlflask_port: int = setting(5001, "port of python -m apps.mlflask", ge=1, le=65535)
    mlflask_workers: int = setting(1, "gunicorn workers of python -m apps.mlflask", ge=1, le=64)
    mlflask_threads: int = setting(8, "threads per worker (concurrent requests share forward passes)", ge=1, le=256)
    mlflask_max_body: int = setting(1 << 20, "largest request body in bytes (413 above)", ge=1024)
    mlflask_max_texts: int = setting(64, "most texts per request (413 above)", ge=1)
    mlflask_quantize: bool | None = setting(
        None, "int8: auto = where job 3 checked it on the test split (else fp32), 1 = always (checked here), 0 = never"
    )
    mlflask_backend: Literal["onnx", "torch"] = setting(
        "onnx", "onnx = the servable's graph; torch = the run's logged checkpoint (needs torch installed)"
    )
    mlflask_batch_wait_ms: int = setting(5, "longest wait for concurrent requests to join a batch", ge=0, le=1000)
    mlflask_max_batch: int = setting(32, "most texts per forward pass", ge=1, le=1024)
    mlflask_max_models: int = setting(8, "models kept loaded per worker; the least recently used is unloaded", ge=1)
    mlflask_max_queue: int = setting(256, "requests waiting per model; beyond it the answer is 503 + Retry-After", ge=1)
    mlflask_client_timeout: float = setting(
        15, "seconds a client has to send a whole request; a slower one gets 408 and is dropped", gt=0
    )
    mlflask_predict_timeout: float = setting(60, "seconds a prediction may wait and run before a 503", gt=0)
    mlflask_log_max_bytes: int = setting(
        8 << 20, "size of the action log before it rotates (one old file kept)", ge=4096
    )
    mlflask_access_log: bool = setting(
        False, "1 = gunicorn writes a line per request to stdout (errors and deploys are always logged)"
    )
    mlflask_allowed_hosts: str | None = setting(
        None, "Host names MLFlask answers to (comma-separated, * = any); unset = loopback names on a loopback bind"
    )
    mlflask_allow_open: bool = setting(False, "1 = allow a non-loopback MLFLASK_HOST without MLFLASK_TOKEN")
    mlflask_follow_interval: float = setting(30, "seconds between re-resolving alias deployments; 0 = off", ge=0)
    mlflask_deployments: str | None = setting(
        None, "deployments rebuilt from the registry at start: name=models:/name@alias,... (comma-separated)"
    )
    mlflask_shadow: str | None = setting(
        None, "shadows set at start: name=models:/name@alias:share,... (share of requests also sent, 0 to 1)"
    )
    mlflask_prediction_log: bool = setting(
        True, "record every prediction in the lake's predictions_log/ (0 = off); see README 'Prediction log'"
    )
    mlflask_log_text_chars: int = setting(
        512, "characters of each text the prediction log keeps (0 = none: only its sha256 and token count)", ge=0
    )
    mlflask_log_buffer_bytes: int = setting(
        32 << 20, "bytes of prediction records a worker buffers; beyond it records are dropped (and counted)", ge=4096
    )
    mlflask_log_flush_rows: int = setting(5000, "a worker writes its buffer once this many records wait", ge=1)
    mlflask_log_flush_seconds: float = setting(
        10, "a worker writes its buffer at least this often (a crash loses at most this much)", gt=0
    )
    prometheus_multiproc_dir: Path | None = setting(
        None, "prometheus_client's shared folder for worker metrics; python -m apps.mlflask sets it"
    )
    mlflask_threads_per_worker: int = setting(
        0, "compute threads per MLFlask worker; 0 = TORCH_NUM_THREADS, else cores / MLFLASK_WORKERS", ge=0
    )
    torch_num_threads: int = setting(0, "torch intra-op threads per process; 0 = torch's choice", ge=0)

    @field_validator("mlflask_quantize", mode="before")
    @classmethod
    def _auto(cls, value):
        return None if isinstance(value, str) and value.strip().lower() in ("auto", "") else value

    @property
    def deployments(self) -> dict[str, ModelRef]:
        """MLFLASK_DEPLOYMENTS as {served name: registry reference}, checked by the registry's name rules."""
        pairs = {}
        for item in filter(None, (part.strip() for part in (self.mlflask_deployments or "").split(","))):
            name, sep, uri = (part.strip() for part in item.partition("="))
            try:
                pairs[check_name(name, "served name")] = ModelRef.parse(uri) if sep else ModelRef.parse(None)
            except ConfigError as exc:
                raise ConfigError(f"MLFLASK_DEPLOYMENTS item {item!r}: {exc}") from None
        return pairs

    @property
    def shadows(self) -> dict[str, tuple[ModelRef, float]]:
        """MLFLASK_SHADOW as {served name: (registry reference, share)}."""
        pairs = {}
        for item in filter(None, (part.strip() for part in (self.mlflask_shadow or "").split(","))):
            name, _, rest = (part.strip() for part in item.partition("="))
            uri, _, share = rest.rpartition(":")
            try:
                value = float(share)
                if not 0 <= value <= 1:
                    raise ValueError
                pairs[check_name(name, "served name")] = (ModelRef.parse(uri), value)
            except (ConfigError, ValueError):
                raise ConfigError(
                    f"MLFLASK_SHADOW item {item!r}: expected name=models:/<name>@<alias>:<share from 0 to 1>"
                ) from None
        return pairs
