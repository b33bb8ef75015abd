"""Every worker loads and warms each deployed version itself, off the request path, as soon as `state.json`
names it: after `POST /models` on any worker, an alias the follower moved, or MLFLASK_DEPLOYMENTS at start.

Each worker reports what it holds in `<store>/.workers/<pid>.json`, so a deploy can wait until every worker of
this MLFlask serves the new version, and say which have not yet.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path

from apps.mlflask.loaded import LoadedModels
from apps.mlflask.memory import release_freed
from apps.mlflask.store import ModelStore

log = logging.getLogger(__name__)
POLL_SECONDS = 0.2
HEARTBEAT_SECONDS = 2.0
STALE_SECONDS = 10.0  # a report older than this is a worker that died (or is stuck): it is not waited for


def _reports_dir(store: ModelStore) -> Path:
    path = store.root / ".workers"
    path.mkdir(exist_ok=True)
    return path


class Warmer:
    """This worker's loader: a thread that follows `state.json` and loads, warms and releases versions."""

    def __init__(self, store: ModelStore, models: LoadedModels, keep: int):
        self._store, self._models, self._keep = store, models, keep
        self._path = _reports_dir(store) / f"{os.getpid()}.json"
        self._taken: set[str] = set()  # deploy ids this warmer has seen: each is loaded (or tried) once
        self._failed: set[str] = set()  # those that would not load here: a deploy need not wait for them
        self._reported: tuple = ()
        self._reported_at = 0.0
        self._released = 0  # `models.retired` when memory was last handed back
        self._stop = threading.Event()
        self.ready = threading.Event()

    def start(self) -> Warmer:
        threading.Thread(target=self._loop, name="mlflask-warmer", daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._path.unlink(missing_ok=True)

    def _loop(self) -> None:
        said = ""
        while not self._stop.is_set():
            try:
                self.tick()
                said = ""
            except Exception as exc:  # noqa: BLE001 - the warmer must outlive any one failure
                if str(exc) != said:  # a lasting failure (a corrupt state.json) is logged once, not every tick
                    said = str(exc)
                    log.exception("warming failed")
            self._stop.wait(POLL_SECONDS)

    def tick(self) -> None:
        if self._models.retired != self._released:  # a tick after the retirement: its batcher thread has ended
            self._released = self._models.retired
            release_freed()
        state = self._store.read_state()
        fresh = [item for item in state.items() if item[1]["deploy_id"] not in self._taken]
        fresh.sort(key=lambda item: item[1]["deployed_at"], reverse=True)
        # Only versions new to this worker, the newest MLFLASK_MAX_MODELS of them: one the LRU evicted later is
        # reloaded on demand, as before, rather than fought over with the requests every tick.
        for rank, (name, record) in enumerate(fresh):
            if rank < self._keep and not self._models.holds(record["deploy_id"]):
                try:
                    self._models.load(name, record, warm=True)
                except Exception as exc:  # noqa: BLE001 - requests keep the version this worker already has
                    self._failed.add(record["deploy_id"])
                    log.warning(
                        "worker %d could not load %s version %s: %s", os.getpid(), name, record.get("version"), exc
                    )
            self._taken.add(record["deploy_id"])
        self._models.release_gone(state)
        self.ready.set()
        self._report(state)

    def pending(self, state: dict) -> list[str]:
        """Deployed names whose current version this worker has not loaded (or tried to) yet."""
        if not self.ready.is_set():
            return sorted(state)
        return sorted(name for name, record in state.items() if record["deploy_id"] not in self._taken)

    def _report(self, state: dict) -> None:
        held = tuple(sorted(d["deploy_id"] for d in state.values() if self._models.holds(d["deploy_id"])))
        if (held, len(self._failed)) == self._reported and time.monotonic() - self._reported_at < HEARTBEAT_SECONDS:
            return
        failed = sorted(self._failed & {d["deploy_id"] for d in state.values()})
        body = {"pid": os.getpid(), "deploy_ids": list(held), "failed": failed, "at": time.time()}
        tmp = self._path.with_suffix(".tmp")
        tmp.write_text(json.dumps(body))
        os.replace(tmp, self._path)
        self._reported, self._reported_at = (held, len(self._failed)), time.monotonic()


def live_reports(store: ModelStore) -> list[dict]:
    """The reports of the workers alive now (fresh heartbeats); dead workers' files are removed."""
    reports = []
    for path in _reports_dir(store).glob("*.json"):
        try:
            report = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        age = time.time() - report.get("at", 0)
        if age < STALE_SECONDS:
            reports.append(report)
        elif age > 6 * STALE_SECONDS:
            path.unlink(missing_ok=True)
    return reports


def wait_everywhere(store: ModelStore, deploy_id: str, timeout: float) -> dict:
    """Wait (bounded) until every live worker holds `deploy_id`, or has failed to load it;
    {"workers", "loaded", "pending": [pids of those that do not hold it]}."""
    deadline = time.monotonic() + timeout
    while True:
        reports = live_reports(store)
        pending = sorted(r["pid"] for r in reports if deploy_id not in r["deploy_ids"])
        waiting = [r for r in reports if r["pid"] in pending and deploy_id not in r.get("failed", ())]
        if not waiting or time.monotonic() > deadline:
            return {"workers": len(reports), "loaded": len(reports) - len(pending), "pending": pending}
        time.sleep(POLL_SECONDS / 2)
