"""Alias following: every MLFLASK_FOLLOW_INTERVAL seconds, each MLFlask process re-resolves its alias deployments
and serves the version the alias points at now. It also rebuilds MLFLASK_DEPLOYMENTS into an empty store.

A moved alias is loaded and smoke-tested in the background, then swapped in atomically; a version that fails keeps
the old one serving and shows as `follow_error`. Workers sharing one store coordinate through its name locks.
"""

from __future__ import annotations

import logging
import threading

from apps.mlflask import deploy as deployment
from apps.mlflask.errors import ApiError
from apps.mlflask.loaded import LoadedModels
from apps.mlflask.store import ModelStore
from apps.mlflask.traffic import arm_name
from mlplatform.errors import PlatformError
from mlplatform.names import ModelRef
from mlplatform.registry import Registry

log = logging.getLogger(__name__)


class Follower:
    def __init__(self, registry: Registry, store: ModelStore, models: LoadedModels, on_event=None):
        self._registry = registry
        self._settings = registry.settings
        self._store = store
        self._models = models
        self._on_event = on_event or (lambda outcome, name: None)
        self._stop = threading.Event()
        self._said: dict[str, str] = {}  # the last error told per name, so a broken version is logged once
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="mlflask-follower", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        interval = self._settings.mlflask_follow_interval
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # noqa: BLE001 - the follower must outlive any one failure
                log.exception("alias follower tick failed")
            if interval <= 0:
                return  # following is off: the tick above only rebuilt MLFLASK_DEPLOYMENTS
            self._stop.wait(interval)

    def tick(self) -> None:
        """One pass: rebuild missing configured deployments, then follow every alias that moved."""
        state = self._store.read_state()
        for name, ref in self._settings.deployments.items():
            if name not in state:
                self._deploy(name, ref, None, "restore")
        for name, (ref, share) in self._settings.shadows.items():  # MLFLASK_SHADOW, once its name is served
            record = self._store.read_state().get(name)
            if record is not None and not record.get("shadow") and share > 0:
                self._deploy(arm_name(name, "shadow"), ref, None, "restore")
                if arm_name(name, "shadow") in self._store.read_state():
                    self._store.set_traffic(name, "shadow", {"model_uri": ref.uri, "share": share})
        for name, record in self._store.read_state().items():
            if record.get("alias"):
                self._follow(name, record)

    def _follow(self, name: str, record: dict) -> None:
        ref = ModelRef.parse(record["model_uri"])
        try:
            version = self._registry.resolve(ref).version
        except PlatformError as exc:
            self._failed(name, None, f"cannot resolve {ref.uri}: {exc}", record)
            return
        if version == record["version"]:
            if record.get("follow_error"):
                self._store.set_follow_error(name, None, None)  # the alias is back on what we serve
            return
        if version == record.get("failed_version"):
            return  # already tried and failed; retried when the alias moves again
        self._deploy(name, ref, version, "follow")

    def _deploy(self, name: str, ref: ModelRef, version: str | None, action: str) -> None:
        try:
            deployment.deploy(self._registry, self._store, self._models, name, ref, action=action, if_changed=True)
            self._said.pop(name, None)
            self._on_event(action, name)
        except ApiError as exc:
            if exc.status == 409:
                return  # another worker of this MLFlask is on it
            self._failed(name, version, exc.message)
        except PlatformError as exc:
            self._failed(name, version, str(exc))

    def _failed(self, name: str, version: str | None, error: str, record: dict | None = None) -> None:
        if self._said.get(name) == error:
            return
        self._said[name] = error
        record = record or self._store.read_state().get(name) or {}
        log.warning("following %s failed (still serving version %s): %s", name, record.get("version"), error)
        self._store.set_follow_error(name, version, error)
        self._store.log("follow_failed", model=name, version=version, error=error[:300])
        self._on_event("follow_failed", name)
