"""Models loaded in this worker: one Servable and one MicroBatcher per deployed version, at most
MLFLASK_MAX_MODELS of them (least recently used first out; reloaded from the store on demand).

The worker's warmer (warm.py) loads each new version before requests need it; until it has, requests for that
name keep going to the version this worker already holds. Only a name this worker has never held is loaded on
the request path, and that says so in the log."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from apps.mlflask.batching import MicroBatcher
from apps.mlflask.errors import ApiError
from apps.mlflask.memory import settle
from apps.mlflask.metrics import LOADED
from apps.mlflask.store import ModelStore
from mlplatform.serving.loader import open_servable
from mlplatform.serving.servable import Servable
from mlplatform.settings import Settings

log = logging.getLogger(__name__)
RETRY_FAILED_S = 30.0
_WARM_TEXTS = ["A warm-up sentence.", "Another, a little longer, so both short and long shapes are traced once."]


@dataclass
class Loaded:
    record: dict
    servable: Servable
    batcher: MicroBatcher


class LoadedModels:
    """Maps a deployed name to its in-memory model, following `state.json` written by any worker.

    A redeploy swaps the entry and closes the old batcher; requests already holding the old entry finish on
    the old model, which is then freed.
    """

    def __init__(self, store: ModelStore, settings: Settings):
        self._store = store
        self._settings = settings
        self._by_deploy: OrderedDict[str, Loaded] = OrderedDict()
        self._lock = threading.Lock()
        # One load at a time per worker: loads compete for the same cores anyway, and transformers' lazy imports
        # are not safe to run from two threads at once (seen: "cannot import name AutoModel..." under a race).
        self._loading = threading.Lock()
        self._newest: dict[str, str] = {}  # name -> the newest deploy id this worker holds for it
        self._failed_loads: dict[str, tuple[float, str]] = {}  # deploy id -> (when, error type)
        self.retired = 0  # versions unloaded so far; the warmer returns their memory once their batchers end

    def load_dir(self, path) -> Servable:
        """The servable in a fetched model folder, through the platform's one loader."""
        return open_servable(path, self._settings)

    def adopt(self, install, record: dict, servable: Servable):
        """Run `install()` (which makes `record` the deployed version) and keep the servable this worker already
        loaded to verify it, as one step for this worker's warmer: it must not see the new version unheld and
        load it a second time. Returns what `install()` returns."""
        settle()
        with self._loading:
            installed = install()
            self._keep(record["deploy_id"], self._wrap(record, servable))
        return installed

    def _wrap(self, record: dict, servable: Servable) -> Loaded:
        s = self._settings
        batcher = MicroBatcher(
            servable.predict,
            s.mlflask_max_batch,
            s.mlflask_batch_wait_ms / 1000,
            max_queue=s.mlflask_max_queue,
            timeout_s=s.mlflask_predict_timeout,
        )
        return Loaded(record, servable, batcher)

    def get(self, name: str) -> Loaded:
        """The model that answers for `name` now: the deployed version once loaded here, else the one before."""
        record = self._store.read_state().get(name)
        if record is None:
            raise ApiError(404, f"model {name!r} is not deployed")
        with self._lock:
            loaded = self._by_deploy.get(record["deploy_id"]) or self._by_deploy.get(self._newest.get(name, ""))
            if loaded is not None:
                self._by_deploy.move_to_end(loaded.record["deploy_id"])
                return loaded
        log.warning("worker %d loads %s version %s on the request path", os.getpid(), name, record.get("version"))
        return self.load(name, record)

    def holds(self, deploy_id: str) -> bool:
        return deploy_id in self._by_deploy

    def load(self, name: str, record: dict, warm: bool = False) -> Loaded:
        """Load (once, however many callers ask at the same time, one load at a time) and keep `record`'s version
        of `name`. A version that failed to load is not tried again for RETRY_FAILED_S: until then, a 503."""
        deploy_id = record["deploy_id"]
        # A request waits for other loads at most MLFLASK_PREDICT_TIMEOUT; the warmer waits its turn.
        if not self._loading.acquire(timeout=-1 if warm else self._settings.mlflask_predict_timeout):
            raise ApiError(503, f"busy loading other models before {name!r}; retry later", retry_after=5)
        try:
            loaded = self._by_deploy.get(deploy_id)
            if loaded is None:
                self._check_not_failed(name, deploy_id)
                try:
                    servable = self.load_dir(self._store.model_path(record))
                except Exception as exc:  # noqa: BLE001 - remembered, so requests do not each retry a whole load
                    self._failed_loads[deploy_id] = (time.monotonic(), type(exc).__name__)
                    log.warning("worker %d could not load %s: %s: %s", os.getpid(), name, type(exc).__name__, exc)
                    self._check_not_failed(name, deploy_id)
                if warm:
                    servable.predict(_WARM_TEXTS)  # first-call costs (allocations, graph setup) paid here
                settle()
                loaded = self._wrap(record, servable)
                self._keep(deploy_id, loaded)
        finally:
            self._loading.release()
        return loaded

    def _check_not_failed(self, name: str, deploy_id: str) -> None:
        failed = self._failed_loads.get(deploy_id)
        if failed is None:
            return
        age = time.monotonic() - failed[0]
        if age >= RETRY_FAILED_S:
            del self._failed_loads[deploy_id]
            return
        raise ApiError(
            503,
            f"model {name!r} could not be loaded here ({failed[1]}); retry later",
            retry_after=int(RETRY_FAILED_S - age) + 1,
        )

    def release_gone(self, state: dict) -> None:
        """Unload the versions of names no longer deployed (removed by any worker)."""
        with self._lock:
            gone = [deploy_id for name, deploy_id in self._newest.items() if name not in state]
        for deploy_id in gone:
            self.release(deploy_id)

    def latest(self) -> str | None:
        state = self._store.read_state()
        if not state:
            return None
        return max(state.values(), key=lambda r: r["deployed_at"])["name"]

    def release(self, deploy_id: str) -> None:
        """Unload a removed model now: its batcher stops and its servable can be freed."""
        with self._lock:
            loaded = self._by_deploy.pop(deploy_id, None)
            self._newest = {name: d for name, d in self._newest.items() if d != deploy_id}
            LOADED.set(len(self._by_deploy))
        if loaded is not None:
            loaded.batcher.close()
            self.retired += 1

    def loaded_count(self) -> int:
        return len(self._by_deploy)

    def _keep(self, deploy_id: str, loaded: Loaded) -> None:
        with self._lock:
            self._by_deploy[deploy_id] = loaded
            self._by_deploy.move_to_end(deploy_id)
            self._newest[loaded.record["name"]] = deploy_id
            # A replaced version goes once its successor is held here; until then it answers for its name.
            live = {record["deploy_id"] for record in self._store.read_state().values()} | set(self._newest.values())
            dropped = [d for d in self._by_deploy if d not in live and d != deploy_id]
            while len(self._by_deploy) - len(dropped) > self._settings.mlflask_max_models:
                oldest = next(d for d in self._by_deploy if d not in dropped)
                dropped.append(oldest)
            closing = [self._by_deploy.pop(d) for d in dropped]
            self._newest = {name: d for name, d in self._newest.items() if d in self._by_deploy}
            LOADED.set(len(self._by_deploy))
        for old in closing:
            old.batcher.close()
            self.retired += 1
