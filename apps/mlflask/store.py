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
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from mlplatform.errors import redact

_GRACE_SECONDS = 600  # a folder or temp file younger than this may belong to a deploy still running


class Busy(Exception):
    """Another deploy or removal of the same name is in progress."""


class StoreCorrupt(Exception):
    """`state.json` cannot be read: routes that need it answer 503, /health still answers."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _fsync_tree(path: Path) -> None:
    """Model files reach the disk before the state points at them, so a crash never serves a torn model."""
    for folder, _, files in os.walk(path):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                os.fsync(handle.fileno())
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


def _fsync_dir(path: Path) -> None:
    """A rename is durable only once its directory is synced."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


class ModelStore:
    def __init__(self, root: Path, log_max_bytes: int = 8 << 20, grace_seconds: float = _GRACE_SECONDS):
        self.root = Path(root)
        self.models_dir = self.root / "models"
        self.staging_dir = self.root / ".staging"
        self.locks_dir = self.root / ".locks"
        for folder in (self.models_dir, self.staging_dir, self.locks_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._state_path = self.root / "state.json"
        self._log_path = self.root / "logs.jsonl"
        self._requests_path = self.root / "failed-requests.jsonl"
        self._log_max_bytes = log_max_bytes
        self._grace = grace_seconds
        self._cache: tuple[tuple[int, int, int], dict] | None = None
        self._clean_leftovers()

    def _clean_leftovers(self) -> None:
        """Staging folders and temp files of a deploy that was killed; young ones may be another worker's."""
        leftovers = [*self.staging_dir.iterdir(), *self.root.glob(".state-*"), *self.root.glob("*.tmp")]
        for path in leftovers:
            if _age(path) > self._grace:
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)

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

    def promotion_lock(self, name: str):
        """Held while POST /models promotes a run to `name` in the registry: two at once would each register the
        run as a new version and set the same alias together (MLflow answers the second one 400). Busy = 409."""
        return self._locked(f"promote:{name}", blocking=False)

    def read_state(self) -> dict[str, dict]:
        """{name: record}; re-read only when the file changed, so it is cheap on every request."""
        try:
            stat = self._state_path.stat()
        except FileNotFoundError:
            return {}
        # Every write is a new file renamed into place, so its inode changes even when size and mtime tick do not.
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._cache is None or self._cache[0] != key:
            try:
                models = json.loads(self._state_path.read_text())["models"]
                if not isinstance(models, dict):
                    raise TypeError("models is not an object")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise StoreCorrupt(f"{self._state_path} cannot be read ({type(exc).__name__})") from None
            self._cache = (key, models)
        return self._cache[1]

    def _write_state(self, models: dict[str, dict]) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".state-")
        with os.fdopen(fd, "w") as handle:
            json.dump({"models": models}, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self._state_path)
        _fsync_dir(self.root)

    def new_staging(self) -> Path:
        path = self.staging_dir / uuid.uuid4().hex
        path.mkdir()
        return path

    def install(self, name: str, record: dict, model_dir: Path) -> dict | None:
        """Move a verified model into place and point `name` at it; return the record it replaced."""
        target = self.models_dir / record["deploy_id"]
        _fsync_tree(model_dir)
        with self._locked():
            os.replace(model_dir, target)
            _fsync_dir(self.models_dir)
            os.utime(target)  # its age counts from now, for the prune grace
            models = dict(self.read_state())
            previous = models.get(name)
            kept = {k: previous[k] for k in ("shadow", "canary") if previous and k in previous}  # a redeploy keeps them
            models[name] = {**kept, **record}
            self._write_state(models)
            self._prune()
        return previous

    def set_follow_error(self, name: str, version: str | None, error: str | None) -> None:
        """Record (or clear) why following `name`'s alias to `version` failed; the served model is unchanged."""
        with self._locked():
            models = dict(self.read_state())
            if name in models:
                error = redact(error) if error else error  # shown by GET /models without a token
                models[name] = {**models[name], "follow_error": error, "failed_version": version}
                self._write_state(models)

    def set_traffic(self, name: str, kind: str, policy: dict | None) -> dict:
        """Set (or clear, with None) `name`'s shadow or canary policy; returns the updated record."""
        with self._locked():
            models = dict(self.read_state())
            record = {k: v for k, v in models[name].items() if k != kind}
            models[name] = {**record, kind: policy} if policy else record
            self._write_state(models)
            return models[name]

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
        """Under the state lock: delete folders no name points at, once past the grace period (a worker may
        still be loading a model that was just replaced)."""
        live = {record["deploy_id"] for record in self.read_state().values()}
        for path in self.models_dir.iterdir():
            if path.name not in live and _age(path) > self._grace:
                shutil.rmtree(path, ignore_errors=True)

    def log(self, action: str, **fields) -> None:
        """Append one action. Failed requests go to a file of their own, so a flood of junk cannot rotate the
        deploy history away; each file rotates past MLFLASK_LOG_MAX_BYTES / 2 (one old file kept)."""
        # GET /logs serves these files without a token: no URI (nor password) from an error message gets in.
        fields = {key: redact(value) if isinstance(value, str) else value for key, value in fields.items()}
        entry = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"), "action": action, **fields}
        line = json.dumps(entry, sort_keys=True)[: min(4096, self._log_max_bytes // 4)]  # callers bound fields
        path = self._requests_path if action == "failed_request" else self._log_path
        with self._locked("log"):
            with open(path, "a") as handle:
                handle.write(line + "\n")
            if path.stat().st_size > self._log_max_bytes // 2:
                os.replace(path, path.with_suffix(".jsonl.1"))

    def logs(self, limit: int = 200, failed_requests: bool = True) -> list[dict]:
        """The newest `limit` entries, newest first: actions, and failed requests unless told not to."""
        paths = [self._log_path] + ([self._requests_path] if failed_requests else [])
        entries = [entry for path in paths for entry in _tail(path, limit)]
        return sorted(entries, key=lambda entry: str(entry.get("time", "")), reverse=True)[:limit]


def _tail(path: Path, limit: int) -> list[dict]:
    """The newest `limit` entries of a log and its rotated file, newest first."""
    entries: list[dict] = []
    for current in (path, path.with_suffix(".jsonl.1")):
        if len(entries) >= limit or not current.exists():
            continue
        for line in reversed(current.read_text().splitlines()):
            try:
                entries.append(json.loads(line))
            except ValueError:
                continue  # a line cut by the size cap
            if len(entries) >= limit:
                break
    return entries
