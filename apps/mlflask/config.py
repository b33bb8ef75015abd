"""MLFlask settings: the platform's settings plus the server's own MLFLASK_* variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from mlplatform.errors import ConfigError
from mlplatform.settings import Settings


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be >= {minimum}")
    return value


@dataclass(frozen=True)
class FlaskSettings:
    """Everything MLFlask reads from the environment, read once by the app factory."""

    platform: Settings = field(default_factory=Settings)
    store: Path = Path("mlflask_store")
    host: str = "127.0.0.1"
    port: int = 5001
    max_body: int = 1 << 20
    max_texts: int = 64
    quantize: bool = False
    batch_wait_ms: int = 5
    max_batch: int = 32
    token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FlaskSettings:
        env = os.environ if environ is None else environ
        platform = Settings.from_env(env)
        return cls(
            platform=platform,
            store=Path(env.get("MLFLASK_STORE", "").strip() or "mlflask_store"),
            host=env.get("MLFLASK_HOST", "").strip() or "127.0.0.1",
            port=_int(env, "MLFLASK_PORT", 5001, minimum=1),
            max_body=_int(env, "MLFLASK_MAX_BODY", 1 << 20, minimum=1024),
            max_texts=_int(env, "MLFLASK_MAX_TEXTS", 64, minimum=1),
            quantize=env.get("MLFLASK_QUANTIZE", "").strip().lower() in ("1", "true", "yes"),
            batch_wait_ms=_int(env, "MLFLASK_BATCH_WAIT_MS", 5),
            max_batch=_int(env, "MLFLASK_MAX_BATCH", 32, minimum=1),
            token=platform.mlflask_token,
        )
