"""MLFlask: serves models from the MLflow Model Registry by name over REST.

Importing this package loads nothing heavy: `python -m apps.mlflask` must set up the gunicorn master (and
prometheus_client's multiprocess folder) before any worker imports the app.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from apps.mlflask.follow import Follower
    from apps.mlflask.loaded import LoadedModels
    from apps.mlflask.metrics import Metrics
    from apps.mlflask.prediction_log import PredictionLog
    from apps.mlflask.ratelimit import RateLimiter
    from apps.mlflask.store import ModelStore
    from apps.mlflask.traffic import Traffic
    from apps.mlflask.warm import Warmer
    from mlplatform.registry import Registry
    from mlplatform.settings import Settings


@dataclass
class Context:
    settings: Settings
    registry: Registry
    store: ModelStore
    models: LoadedModels
    metrics: Metrics
    warmer: Warmer | None = None
    traffic: Traffic | None = None
    prediction_log: PredictionLog | None = None
    feedback_limit: RateLimiter | None = None
    follower: Follower | None = None

    def stop(self) -> None:
        """Stop this app's threads (the warmer, the follower, the log writer): for an app made in a test or a
        script, which no worker exit ends."""
        for part in (self.warmer, self.follower):
            if part is not None:
                part.stop()
        if self.prediction_log is not None:
            self.prediction_log.close()


def create_app(settings: Settings | None = None) -> Flask:
    """Build the app; tests pass their own settings, `python -m apps.mlflask` its own, gunicorn's wsgi.py none
    (the environment is read here, once)."""
    from flask import Flask

    from apps.mlflask import api, errors, guard, middleware, openapi, prediction_log, v2
    from apps.mlflask.follow import Follower
    from apps.mlflask.loaded import LoadedModels
    from apps.mlflask.memory import limit_arenas
    from apps.mlflask.metrics import Metrics
    from apps.mlflask.ratelimit import RateLimiter
    from apps.mlflask.store import ModelStore
    from apps.mlflask.traffic import Traffic
    from apps.mlflask.warm import Warmer
    from mlplatform.errors import without_password
    from mlplatform.registry import Registry
    from mlplatform.settings import Settings

    settings = settings or Settings.load()
    limit_arenas()
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=settings.mlflask_max_body, JSON_SORT_KEYS=False)
    app.json.sort_keys = False
    registry = Registry(settings)
    store = ModelStore(settings.mlflask_store, log_max_bytes=settings.mlflask_log_max_bytes)
    context = Context(
        settings, registry, store, LoadedModels(store, settings), Metrics(settings.prometheus_multiproc_dir)
    )
    app.extensions["mlflask"] = context
    context.warmer = Warmer(store, context.models, settings.mlflask_max_models).start()
    context.traffic = Traffic(context.models)
    context.prediction_log = prediction_log.from_settings(settings)
    context.feedback_limit = RateLimiter(settings.mlflask_feedback_rate)
    if settings.mlflask_follow_interval > 0 or settings.deployments or settings.shadows:
        context.follower = Follower(registry, store, context.models, context.metrics.follow_event)
        context.follower.start()
    errors.init_app(app)
    guard.init_app(app)
    app.register_blueprint(middleware.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(v2.bp)
    app.register_blueprint(openapi.bp)
    logging.getLogger(__name__).info(
        "MLFlask store %s, MLflow %s",
        settings.mlflask_store.resolve(),
        without_password(settings.mlflowserver_url or settings.mlflow_backend_store_uri),
    )
    return app
