"""The one promotion path: what was asked -> a registered version -> the alias, moved back if serving it fails.

Job 4, MLDash, `POST /models` and the Dagster asset all go through `Promotions.promote_then` (MLFlask's side of
it, `promote_and_serve`, sits a floor up in `mlplatform.promotion.serve`). The MLflow Model
Registry is the record of what is deployed: a deployment names a registered model and either an alias
(`models:/<name>@<alias>`, followed when it moves) or a pinned version (`models:/<name>/<version>`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from mlplatform.data.pins import pin_generation
from mlplatform.errors import PlatformError
from mlplatform.names import ModelRef, check_alias, check_name
from mlplatform.registry.modelcard import model_card, model_tags
from mlplatform.registry.runs import RunQueries, RunSummary
from mlplatform.registry.tracking import NotInTracking, mlflow_errors, or_none

log = logging.getLogger(__name__)
ANY = object()  # promote(expected=ANY): move the alias from wherever it points


class AliasMoved(PlatformError):
    """The alias no longer points where the caller saw it (another promotion came first): nothing was moved."""


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


class Promotions(RunQueries):
    """Registering runs, moving aliases, and resolving references, in the configured MLflow."""

    def resolve(self, ref: ModelRef) -> Resolved:
        """The version a reference points at now, with its run, description and tags."""
        missing = f"{ref.uri} does not exist in the MLflow registry at {self.uri}"
        if not self._model_exists(ref.name):  # MLflow's auth app answers 403, not 404, for a missing model
            raise NotInTracking(missing)
        with mlflow_errors("MLflow registry", missing=missing):
            if ref.alias:
                version = self.client.get_model_version_by_alias(ref.name, ref.alias)
            else:
                version = self.client.get_model_version(ref.name, ref.version)
        if not version.run_id:
            raise NotInTracking(f"{ref.uri} (version {version.version}) has no run: only run-logged models are served")
        return Resolved(ref, str(version.version), version.run_id, version.description or "", dict(version.tags or {}))

    def promote(
        self,
        name: str,
        *,
        run_id: str | None = None,
        metric: str | None = None,
        version: str | int | None = None,
        alias: str | None = None,
        dry_run: bool = False,
        expected=ANY,
    ) -> Promotion:
        """Resolve a run id, the best run by `metric`, or an existing `version`; register the run's model as a
        version of `name` when it has none; point the alias (MODEL_ALIAS) at it. A second call changes nothing.

        `expected`: the version the caller saw the alias on (None: unset); if it points elsewhere now, AliasMoved
        and nothing changes. MLflow has no conditional alias write, so this is checked just before the move."""
        check_name(name)
        alias = check_alias(alias or self.settings.model_alias)
        with mlflow_errors("MLflow registry", missing=f"models:/{name}/{version} does not exist"):
            if version is not None:
                run = None
                target = self.client.get_model_version(name, str(version))
                run_id = target.run_id
            else:
                run = self.get_run(run_id, metric) if run_id else self.best_run(metric or self.settings.deploy_metric)
                run_id = run.run_id
                target = self._version_of_run(name, run_id)
            current = self._alias_target(name, alias)
            if expected is not ANY and current != (None if expected is None else str(expected)):
                raise AliasMoved(
                    f"{name}@{alias} points at version {current or 'nothing'}, not {expected or 'nothing'} as when "
                    "this was decided: another promotion came first; nothing was moved (run the gate again)"
                )
            if dry_run:
                number = str(target.version) if target else "(new)"
                return Promotion(name, number, alias, run_id, target is None, current != number, current, dry_run=True)
            registered = target is None
            if registered:
                target = self._register(name, run)
            number = str(target.version)
            if current != number:
                self.client.set_registered_model_alias(name, alias, number)
                log.info("%s@%s -> version %s (was %s)", name, alias, number, current or "unset")
        return Promotion(name, number, alias, run_id, registered, current != number, current)

    def promote_then(
        self,
        serve: Callable[[Promotion], dict],
        name: str,
        *,
        rollback_on: Callable[[BaseException], bool] = lambda exc: True,
        **asked,
    ) -> tuple[Promotion, dict]:
        """Promote (see `promote`), then `serve(promotion)`; if serving fails, the alias moves back.

        `rollback_on(exc)` says whether a failure is the version's; a deploy refused only because another one of
        the same name is running (MLFlask's 409) is not, and must not undo that other deploy's alias."""
        promotion = self.promote(name, **asked)
        try:
            return promotion, serve(promotion)
        except BaseException as exc:
            if promotion.alias_moved and not promotion.dry_run and rollback_on(exc):
                self.restore_alias(promotion)  # a failed deploy leaves the registry as it was
            raise

    def restore_alias(self, promotion: Promotion) -> None:
        """Point the alias back where it was, unless someone has moved it since (then theirs stands)."""
        if self._alias_target(promotion.name, promotion.alias) != promotion.version:
            return
        with mlflow_errors("MLflow registry"):
            if promotion.previous:
                self.client.set_registered_model_alias(promotion.name, promotion.alias, promotion.previous)
            else:
                self.client.delete_registered_model_alias(promotion.name, promotion.alias)
        log.warning(
            "%s was not served; %s@%s is back on %s",
            promotion.version,
            promotion.name,
            promotion.alias,
            promotion.previous or "nothing",
        )

    def drop_alias(self, name: str, alias: str, version: str) -> bool:
        """Remove `alias` if it still points at `version`; a move made since stands. MLflow has no conditional
        alias write: between the read and the delete another writer could still slip in."""
        if self._alias_target(name, alias) != str(version):
            return False
        with mlflow_errors("MLflow registry"):
            self.client.delete_registered_model_alias(name, alias)
        log.info("%s@%s removed from version %s", name, alias, version)
        return True

    def _model_exists(self, name: str) -> bool:
        return bool(or_none(self.client.search_registered_models, f"name = '{name}'"))

    def _alias_target(self, name: str, alias: str) -> str | None:
        # Asked for a model that does not exist yet, MLflow's auth app answers 403, not 404: look it up first.
        if not self._model_exists(name):
            return None
        version = or_none(self.client.get_model_version_by_alias, name, alias)
        return str(version.version) if version else None

    def _version_of_run(self, name: str, run_id: str):
        versions = or_none(self.client.search_model_versions, f"name = '{name}' and run_id = '{run_id}'")
        return min(versions, key=lambda v: int(v.version)) if versions else None

    def _register(self, name: str, run: RunSummary):
        """A new version of `name` from the run's logged model, with its model card and tags."""
        import mlflow

        mlflow.set_tracking_uri(self.uri)  # register_model is fluent: it must use this registry's store
        version = str(mlflow.register_model(run.model_uri, name, await_registration_for=120).version)
        self.client.update_model_version(name, version, description=model_card(run))
        for key, value in model_tags(run).items():
            self.client.set_model_version_tag(name, version, key, value)
        log.info("registered %s version %s from run %s", name, version, run.run_id)
        pin_generation(self.settings, name, version, run.tags.get("dataset_generation"))  # its training data stays
        return self.client.get_model_version(name, version)

    def version_exists(self, name: str, version: str) -> bool | None:
        """Whether the registry has that version; None when it cannot say (MLflow unreachable)."""
        try:
            with mlflow_errors("MLflow registry", missing="gone"):
                self.client.get_model_version(name, version)
            return True
        except NotInTracking:
            return False
        except PlatformError:
            return None
