"""Models loaded in this worker: one Predictor and one MicroBatcher per deployed version, at most
MLFLASK_MAX_MODELS of them (least recently used first out; reloaded from the store on demand)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from apps.mlflask.batching import MicroBatcher
from apps.mlflask.errors import ApiError
from apps.mlflask.metrics import LOADED
from apps.mlflask.store import ModelStore
from mlplatform.serving.predictor import Predictor
from mlplatform.settings import Settings


@dataclass
class Loaded:
    record: dict
    predictor: Predictor
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
        self._loading: dict[str, threading.Lock] = {}

    def load_dir(self, path) -> Predictor:
        s = self._settings
        return Predictor(
            path,
            quantize=s.mlflask_quantize,
            batch_size=s.mlflask_max_batch,
            threads=s.torch_num_threads,
            backend=s.serving_backend,
        )

    def adopt(self, record: dict, predictor: Predictor) -> None:
        """Keep a predictor this worker already loaded (to verify a deploy), so it is not loaded twice."""
        self._keep(record["deploy_id"], self._wrap(record, predictor))

    def _wrap(self, record: dict, predictor: Predictor) -> Loaded:
        s = self._settings
        batcher = MicroBatcher(
            predictor.predict,
            s.mlflask_max_batch,
            s.mlflask_batch_wait_ms / 1000,
            max_queue=s.mlflask_max_queue,
            timeout_s=s.mlflask_predict_timeout,
        )
        return Loaded(record, predictor, batcher)

    def get(self, name: str) -> Loaded:
        record = self._store.read_state().get(name)
        if record is None:
            raise ApiError(404, f"model {name!r} is not deployed")
        deploy_id = record["deploy_id"]
        with self._lock:
            loaded = self._by_deploy.get(deploy_id)
            if loaded is not None:
                self._by_deploy.move_to_end(deploy_id)
                return loaded
            gate = self._loading.setdefault(deploy_id, threading.Lock())
        with gate:  # concurrent first requests for one model load it once
            loaded = self._by_deploy.get(deploy_id)
            if loaded is None:
                loaded = self._wrap(record, self.load_dir(self._store.model_path(record)))
                self._keep(deploy_id, loaded)
        return loaded

    def latest(self) -> str | None:
        state = self._store.read_state()
        if not state:
            return None
        return max(state.values(), key=lambda r: r["deployed_at"])["name"]

    def release(self, deploy_id: str) -> None:
        """Unload a removed model now: its batcher stops and its predictor can be freed."""
        with self._lock:
            loaded = self._by_deploy.pop(deploy_id, None)
            LOADED.set(len(self._by_deploy))
        if loaded is not None:
            loaded.batcher.close()

    def loaded_count(self) -> int:
        return len(self._by_deploy)

    def _keep(self, deploy_id: str, loaded: Loaded) -> None:
        with self._lock:
            self._by_deploy[deploy_id] = loaded
            self._by_deploy.move_to_end(deploy_id)
            self._loading.pop(deploy_id, None)
            live = {record["deploy_id"] for record in self._store.read_state().values()}
            dropped = [d for d in self._by_deploy if d not in live and d != deploy_id]
            while len(self._by_deploy) - len(dropped) > self._settings.mlflask_max_models:
                oldest = next(d for d in self._by_deploy if d not in dropped)
                dropped.append(oldest)
            closing = [self._by_deploy.pop(d) for d in dropped]
            LOADED.set(len(self._by_deploy))
        for old in closing:
            old.batcher.close()
