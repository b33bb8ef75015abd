"""The one promotion path: what was asked -> a registered version -> the alias. Job 4, MLDash and MLFlask use it.

The MLflow Model Registry is the record of what is deployed: a deployment names a registered model and either an
alias (`models:/<name>@<alias>`, followed when it moves) or a pinned version (`models:/<name>/<version>`).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass

from mlplatform.errors import ConfigError, PlatformError
from mlplatform.registry import tracking
from mlplatform.registry.modelcard import model_card, model_tags
from mlplatform.registry.names import NAME_RULE, is_valid_name
from mlplatform.registry.runs import RunSummary, best_run, get_run
from mlplatform.registry.tracking import NotInTracking, mlflow_errors
from mlplatform.serving.client import Conflict, MLFlaskClient
from mlplatform.settings import Settings

log = logging.getLogger(__name__)
_URI = re.compile(r"models:/(?P<name>[A-Za-z0-9_.-]{1,64})(?:/(?P<version>[0-9]{1,9})|@(?P<alias>[A-Za-z0-9_-]{1,64}))")
ALIAS_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")


@dataclass(frozen=True)
class ModelRef:
    """A registry reference: a registered model and either an alias or a pinned version."""

    name: str
    version: str | None = None
    alias: str | None = None

    @property
    def uri(self) -> str:
        return f"models:/{self.name}@{self.alias}" if self.alias else f"models:/{self.name}/{self.version}"

    @classmethod
    def parse(cls, uri: object) -> ModelRef:
        """Only `models:/<name>/<version>` or `models:/<name>@<alias>` of the configured MLflow: no path, no URL."""
        match = _URI.fullmatch(uri) if isinstance(uri, str) else None
        if not match or not is_valid_name(match["name"]) or (match["version"] and int(match["version"]) < 1):
            raise ConfigError(
                f"model_uri must be models:/<name>/<version> or models:/<name>@<alias>, with a name of {NAME_RULE}"
            )
        return cls(match["name"], match["version"], match["alias"])


@dataclass(frozen=True)
class Resolved:
    """What a reference points at right now."""

    ref: ModelRef
    version: str
    run_id: str
    description: str
    tags: dict

    @property
    def version_uri(self) -> str:
        return f"models:/{self.ref.name}/{self.version}"


@dataclass(frozen=True)
class Promotion:
    name: str
    version: str
    alias: str
    run_id: str
    registered: bool  # a new version was created
    alias_moved: bool
    previous: str | None = None  # the version the alias pointed at before
    dry_run: bool = False

    @property
    def ref(self) -> ModelRef:
        return ModelRef(self.name, alias=self.alias)


def check_alias(alias: str) -> str:
    if not ALIAS_RE.fullmatch(alias) or re.fullmatch(r"v[0-9]+", alias) or alias == "latest":
        raise ConfigError(f"MODEL_ALIAS={alias!r} must start with a letter, hold letters, digits, '_', '-'")
    return alias


def resolve(settings: Settings, ref: ModelRef) -> Resolved:
    """The version a reference points at now, with its run, description and tags."""
    client = tracking.client(settings)
    missing = f"{ref.uri} does not exist in the MLflow registry at {tracking.tracking_uri(settings)}"
    with mlflow_errors("MLflow registry", missing=missing):
        if ref.alias:
            version = client.get_model_version_by_alias(ref.name, ref.alias)
        else:
            version = client.get_model_version(ref.name, ref.version)
    if not version.run_id:
        raise NotInTracking(f"{ref.uri} (version {version.version}) has no run: only run-logged models are served")
    return Resolved(ref, str(version.version), version.run_id, version.description or "", dict(version.tags or {}))


def promote(
    settings: Settings,
    name: str,
    *,
    run_id: str | None = None,
    metric: str | None = None,
    version: str | int | None = None,
    alias: str | None = None,
    dry_run: bool = False,
) -> Promotion:
    """Resolve a run id, the best run by `metric`, or an existing `version`; register the run's model as a version
    of `name` when it has none; point the alias (MODEL_ALIAS) at it. Idempotent: a second call changes nothing."""
    if not is_valid_name(name):
        raise ConfigError(f"model name {name!r} must be {NAME_RULE}")
    alias = check_alias(alias or settings.model_alias)
    client = tracking.client(settings)
    with mlflow_errors("MLflow registry", missing=f"models:/{name}/{version} does not exist"):
        if version is not None:
            run = None
            target = client.get_model_version(name, str(version))
            run_id = target.run_id
        else:
            run = get_run(settings, run_id, metric) if run_id else best_run(settings, metric or settings.deploy_metric)
            run_id = run.run_id
            target = _version_of_run(client, name, run_id)
        current = _alias_target(client, name, alias)
        if dry_run:
            number = str(target.version) if target else "(new)"
            return Promotion(name, number, alias, run_id, target is None, current != number, current, dry_run=True)
        registered = target is None
        if registered:
            target = _register(client, name, run)
        number = str(target.version)
        if current != number:
            client.set_registered_model_alias(name, alias, number)
            log.info("%s@%s -> version %s (was %s)", name, alias, number, current or "unset")
    return Promotion(name, number, alias, run_id, registered, current != number, current)


def _alias_target(client, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def _version_of_run(client, name: str, run_id: str):
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name = '{name}' and run_id = '{run_id}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise
    return min(versions, key=lambda v: int(v.version)) if versions else None


def _register(client, name: str, run: RunSummary):
    """A new version of `name` from the run's logged model, with its model card and tags."""
    import mlflow

    version = str(mlflow.register_model(run.model_uri, name, await_registration_for=120).version)
    client.update_model_version(name, version, description=model_card(run))
    for key, value in model_tags(run).items():
        client.set_model_version_tag(name, version, key, value)
    log.info("registered %s version %s from run %s", name, version, run.run_id)
    return client.get_model_version(name, version)


def promote_and_serve(
    settings: Settings, mlflask: MLFlaskClient, name: str, **asked
) -> tuple[Promotion, dict | None, bool]:
    """Promote (see `promote`), then make MLFlask serve `models:/<name>@<alias>`.

    Returns (promotion, what MLFlask serves, whether MLFlask was changed). With dry_run=True nothing changes.
    """
    promotion = promote(settings, name, **asked)
    served = mlflask.model(name)
    if promotion.dry_run:
        return promotion, served, False
    if served and served.get("model_uri") == promotion.ref.uri and served.get("version") == promotion.version:
        return promotion, served, False
    try:
        return promotion, _serve(mlflask, promotion), True
    except PlatformError:
        if promotion.alias_moved:
            _restore_alias(settings, promotion)  # a failed deploy leaves the registry as it was
        raise


def _serve(mlflask: MLFlaskClient, promotion: Promotion, timeout: float = 600) -> dict:
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
        if served and served.get("model_uri") == promotion.ref.uri and served.get("version") == promotion.version:
            return served


def _restore_alias(settings: Settings, promotion: Promotion) -> None:
    client = tracking.client(settings)
    with mlflow_errors("MLflow registry"):
        if promotion.previous:
            client.set_registered_model_alias(promotion.name, promotion.alias, promotion.previous)
        else:
            client.delete_registered_model_alias(promotion.name, promotion.alias)
    log.warning(
        "MLFlask did not take %s; %s@%s is back on %s",
        promotion.version,
        promotion.name,
        promotion.alias,
        promotion.previous or "nothing",
    )
