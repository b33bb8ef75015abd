"""MLFlask in this process: `create_app` and its `test_client()`, the same routes, store, warmer and follower as
under gunicorn, with no socket and no worker start. For route behaviour; the HTTP front, workers and signals
keep their live servers (tests/helpers/services.py)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apps.mlflask import create_app
from mlplatform.settings import Settings


@contextmanager
def mlflask_app(folder: Path, env: dict, store: Path | None = None) -> Iterator:
    """(test client, app, store folder) of an MLFlask on `env`; its threads are stopped on the way out."""
    store = store or folder / "store"
    values = {"LAKE_DIR": str(folder / "lake"), "MLFLASK_PREDICTION_LOG": "0", **env, "MLFLASK_STORE": str(store)}
    app = create_app(Settings.from_mapping(values))
    try:
        yield app.test_client(), app, store
    finally:
        app.extensions["mlflask"].stop()
