"""The MLflow tracking store and Model Registry as the platform uses them, through one object: `Registry`.

registry = Registry(settings)        # MLflow configured once, here
registry.best_run("val_f1")          # runs.py: finding runs
registry.promote_then(serve, name)   # promotion.py: register, move the alias, roll back on failure
"""

from mlplatform.registry.promotion import Promotion, Promotions, Resolved
from mlplatform.registry.runs import RunNotFound, RunSummary, maximise
from mlplatform.registry.tracking import NotInTracking, TrackingUnavailable, mlflow_errors


class Registry(Promotions):
    """Runs, registered versions and aliases of the configured MLflow; every MLflow error is mapped here."""


__all__ = [
    "NotInTracking",
    "Promotion",
    "Registry",
    "Resolved",
    "RunNotFound",
    "RunSummary",
    "TrackingUnavailable",
    "maximise",
    "mlflow_errors",
]
