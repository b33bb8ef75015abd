"""The deployed set on disk, shared by every worker: model folders, `state.json` and the action log.

Writers take an exclusive `flock` and replace `state.json` atomically, so a reader (any worker, after any
restart or `kill -9`) sees either the old set or the new one. Model folders are named by deploy id, never
by the user's model name, so a name can never reach the filesystem.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

_LOG_MAX_BYTES = 8 << 20
_LOG_KEEP_LINES = 20_000


class Busy(Exception):
    """Another deploy or removal of the same name is in progress."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ModelStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.models_dir = self.root / "models"
        self.staging_dir = self.root / ".staging"
        self.locks_dir = self.root / ".locks"
        for folder in (self.models_dir, self.staging_dir, self.locks_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._state_path = self.root / "state.json"
        self._log_path = self.root / "logs.jsonl"
        self._cache: tuple[tuple[int, int], dict] | None = None

    @contextlib.contextmanager
    def _locked(self, name: str = "state", blocking: bool = True):
        path = self.locks_dir / (hashlib.sha256(name.encode()).hexdigest()[:16] + ".lock")
        with open(path, "a") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                raise Busy(name) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def name_lock(self, name: str):
        """Held for a whole deploy or removal of `name`; a second one fails fast with Busy (HTTP 409)."""
        return self._locked(f"name:{name}", blocking=False)

    def read_state(self) -> dict[str, dict]:
        """{name: record}; re-read only when the file changed, so it is cheap on every request."""
        try:
            stat = self._state_path.stat()
        except FileNotFoundError:
            return {}
        key = (stat.st_mtime_ns, stat.st_size)
        if self._cache is None or self._cache[0] != key:
            self._cache = (key, json.loads(self._state_path.read_text())["models"])
        return self._cache[1]

    def _write_state(self, models: dict[str, dict]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".state-")
        with os.fdopen(fd, "w") as handle:
            json.dump({"models": models}, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._state_path)

    def new_staging(self) -> Path:
        path = self.staging_dir / uuid.uuid4().hex
        path.mkdir()
        return path

    def install(self, name: str, record: dict, model_dir: Path) -> dict | None:
        """Move a verified model into place and point `name` at it; return the record it replaced."""
        deploy_id = record["deploy_id"]
        os.replace(model_dir, self.models_dir / deploy_id)
        with self._locked():
            models = dict(self.read_state())
            previous = models.get(name)
            models[name] = record
            self._write_state(models)
        self._prune()
        return previous

    def set_follow_error(self, name: str, version: str | None, error: str | None) -> None:
        """Record (or clear) why following `name`'s alias to `version` failed; the served model is unchanged."""
        with self._locked():
            models = dict(self.read_state())
            if name in models:
                models[name] = {**models[name], "follow_error": error, "failed_version": version}
                self._write_state(models)

    def remove(self, name: str) -> dict | None:
        with self._locked():
            models = dict(self.read_state())
            record = models.pop(name, None)
            if record is not None:
                self._write_state(models)
        self._prune()
        return record

    def model_path(self, record: dict) -> Path:
        return self.models_dir / record["deploy_id"]

    def _prune(self) -> None:
        """Delete folders no name points at, except the newest replaced one, which a worker may be loading."""
        live = {record["deploy_id"] for record in self.read_state().values()}
        stale = sorted((p for p in self.models_dir.iterdir() if p.name not in live), key=lambda p: p.stat().st_mtime)
        for path in stale[:-1]:
            shutil.rmtree(path, ignore_errors=True)

    def log(self, action: str, **fields) -> None:
        entry = {"time": now(), "action": action, **fields}
        with self._locked("log"):
            with open(self._log_path, "a") as handle:
                handle.write(json.dumps(entry, sort_keys=True) + "\n")
            if self._log_path.stat().st_size > _LOG_MAX_BYTES:  # a flood of bad requests must not fill the disk
                kept = self._log_path.read_text().splitlines()[-_LOG_KEEP_LINES:]
                tmp = self._log_path.with_suffix(".tmp")
                tmp.write_text("\n".join(kept) + "\n")
                os.replace(tmp, self._log_path)

    def logs(self, limit: int = 200) -> list[dict]:
        """The newest `limit` actions, newest first."""
        if not self._log_path.exists():
            return []
        lines = self._log_path.read_text().splitlines()[-limit:]
        return [json.loads(line) for line in reversed(lines) if line.strip()]
