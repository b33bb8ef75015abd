"""Promotion with MLFlask: register and move the alias, then make MLFlask serve it, or move the alias back."""

from __future__ import annotations

import time

from mlplatform.registry import Promotion, Registry
from mlplatform.serving.client import Conflict


def promote_and_serve(registry: Registry, mlflask, name: str, **asked) -> tuple[Promotion, dict | None, bool]:
    """Promote, then make the MLFlask behind `mlflask` (an MLFlaskClient) serve `models:/<name>@<alias>`.

    Returns (promotion, what MLFlask serves, whether MLFlask was changed). With dry_run=True nothing changes.
    """
    changed = False

    def serve(promotion: Promotion) -> dict | None:
        nonlocal changed
        served = mlflask.model(name)
        if promotion.dry_run or _serves(served, promotion):
            return served
        changed = True
        return _serve(mlflask, promotion)

    promotion, served = registry.promote_then(serve, name, **asked)
    return promotion, served, changed


def _serve(mlflask, promotion: Promotion, timeout: float = 600) -> dict:
    """Deploy the alias; while another deploy of the name runs (often MLFlask's own follower, taking this very
    version), wait for it and take its result when it is ours."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return mlflask.deploy(promotion.name, model_uri=promotion.ref.uri)
        except Conflict:
            if time.monotonic() > deadline:
                raise
        time.sleep(1)
        served = mlflask.model(promotion.name)
        if _serves(served, promotion):
            return served


def _serves(served: dict | None, promotion: Promotion) -> bool:
    return bool(served) and (served.get("model_uri"), served.get("version")) == (promotion.ref.uri, promotion.version)
