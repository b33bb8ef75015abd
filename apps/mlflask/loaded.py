"""Models loaded in this worker: one Predictor and one MicroBatcher per deployed version, loaded once."""

from __future__ import annotations

import threading
from dataclasses import dataclass

from apps.mlflask.batching import MicroBatcher
from apps.mlflask.errors import ApiError
from apps.mlflask.store import ModelStore
from mlplatform.predictor import Predictor
from mlplatform.settings import Settings


@dataclass
class Loaded:
    record: dict
    predictor: Predictor
    batcher: MicroBatcher


class LoadedModels:
    """Maps a deployed name to its in-memory model, following `state.json` written by any worker.

    A redeploy swaps the entry; requests already holding the old entry finish on the old model.
    """

    def __init__(self, store: ModelStore, settings: Settings):
        self._store = store
        self._settings = settings
        self._by_deploy: dict[str, Loaded] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def load_dir(self, path) -> Predictor:
        s = self._settings
        return Predictor(path, quantize=s.mlflask_quantize, batch_size=s.mlflask_max_batch, threads=s.torch_num_threads)

    def adopt(self, record: dict, predictor: Predictor) -> None:
        """Keep a predictor this worker already loaded (to verify a deploy), so it is not loaded twice."""
        with self._lock:
            self._by_deploy[record["deploy_id"]] = self._wrap(record, predictor)

    def _wrap(self, record: dict, predictor: Predictor) -> Loaded:
        batcher = MicroBatcher(
            predictor.predict, self._settings.mlflask_max_batch, self._settings.mlflask_batch_wait_ms / 1000
        )
        return Loaded(record, predictor, batcher)

    def get(self, name: str) -> Loaded:
        record = self._store.read_state().get(name)
        if record is None:
            raise ApiError(404, f"model {name!r} is not deployed")
        deploy_id = record["deploy_id"]
        loaded = self._by_deploy.get(deploy_id)
        if loaded is not None:
            return loaded
        with self._lock:
            gate = self._loading.setdefault(deploy_id, threading.Lock())
        with gate:  # concurrent first requests for one model load it once
            loaded = self._by_deploy.get(deploy_id)
            if loaded is None:
                loaded = self._wrap(record, self.load_dir(self._store.model_path(record)))
                with self._lock:
                    self._by_deploy[deploy_id] = loaded
                    self._forget_stale()
        return loaded

    def latest(self) -> str | None:
        state = self._store.read_state()
        if not state:
            return None
        return max(state.values(), key=lambda r: r["deployed_at"])["name"]

    def _forget_stale(self) -> None:
        live = {record["deploy_id"] for record in self._store.read_state().values()}
        for deploy_id in [d for d in self._by_deploy if d not in live]:
            del self._by_deploy[deploy_id]
