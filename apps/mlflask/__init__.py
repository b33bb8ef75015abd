"""MLFlask: stores models deployed from MLflow and serves them by name over REST."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import Flask

from apps.mlflask.config import FlaskSettings
from apps.mlflask.loaded import LoadedModels
from apps.mlflask.metrics import Metrics
from apps.mlflask.store import ModelStore
from mlplatform.tracking import configure


@dataclass
class Context:
    settings: FlaskSettings
    store: ModelStore
    models: LoadedModels
    metrics: Metrics


def create_app(settings: FlaskSettings | None = None) -> Flask:
    """Build the app; tests pass their own settings, production reads the environment."""
    from apps.mlflask import api, errors

    settings = settings or FlaskSettings.from_env()
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.max_body, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    configure(settings.platform)
    store = ModelStore(settings.store)
    app.extensions["mlflask"] = Context(settings, store, LoadedModels(store, settings), Metrics())
    errors.init_app(app)
    app.register_blueprint(api.bp)
    logging.getLogger(__name__).info(
        "MLFlask store %s, MLflow %s",
        settings.store.resolve(),
        settings.platform.mlflowserver_url or settings.platform.mlflow_backend_store_uri,
    )
    return app
