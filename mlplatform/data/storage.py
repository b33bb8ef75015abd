"""Byte storage under one prefix: a local folder or an S3 bucket (boto3, honouring AWS_ENDPOINT_URL)."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import tempfile
from pathlib import Path
from typing import Protocol

from mlplatform.errors import LakeError
from mlplatform.settings import Settings

log = logging.getLogger(__name__)


class Storage(Protocol):
    """The few operations the lake needs; keys are '/'-separated and relative to the lake prefix."""

    location: str

    def get(self, key: str) -> bytes | None: ...
    def put(self, key: str, data: bytes) -> None: ...
    def delete(self, key: str) -> None: ...
    def list(self, prefix: str) -> list[str]: ...
    def get_tagged(self, key: str) -> tuple[bytes | None, str | None]:
        """The bytes and a tag naming this version of them (None, None when absent)."""

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        """Write only if the key still holds the version `tag` names (None: only if it is absent)."""


def _check_key(key: str) -> str:
    parts = key.split("/")
    if key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise LakeError(f"invalid lake key {key!r}")
    return key


class LocalStorage:
    """A folder on disk. Writes go to a temp file and are renamed into place, so readers never see half a file."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.location = self.root.resolve().as_uri()

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        return path.read_bytes() if path.is_file() else None

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def get_tagged(self, key: str) -> tuple[bytes | None, str | None]:
        data = self.get(key)
        return data, None if data is None else hashlib.sha256(data).hexdigest()

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.parent / f".lock-{path.name}", "a") as lock:  # flock: other processes on this disk too
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.get_tagged(key)[1] != tag:
                return False
            self.put(key, data)
            return True

    def list(self, prefix: str) -> list[str]:
        base = self.root / _check_key(prefix.rstrip("/"))
        if not base.is_dir():
            return []
        files = (p for p in base.rglob("*") if p.is_file() and not p.name.startswith("."))
        return sorted(p.relative_to(self.root).as_posix() for p in files)


class S3Storage:
    """An S3 bucket (or MinIO, moto) under a key prefix. S3 PUTs are atomic per object."""

    def __init__(self, settings: Settings, prefix: str = ""):
        import boto3
        from botocore.config import Config

        self.bucket = settings.aws_bucket
        self.prefix = prefix.strip("/")
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        self._last_writer_wins = settings.lake_last_writer_wins
        self._client = boto3.client(
            "s3",
            region_name=settings.aws_region_name,
            endpoint_url=settings.aws_endpoint_url,
            aws_access_key_id=settings.aws_access_key_id,
            aws_secret_access_key=settings.aws_secret_access_key,
            config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=60),
        )

    def _key(self, key: str) -> str:
        key = _check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _call(self, what: str, fn, **kwargs):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(Bucket=self.bucket, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("NoSuchKey", "404"):
                return None
            raise LakeError(f"S3 {what} failed on bucket {self.bucket!r}: {code or exc}") from None
        except BotoCoreError as exc:
            raise LakeError(f"S3 {what} failed on bucket {self.bucket!r}: {exc}") from None

    def get(self, key: str) -> bytes | None:
        response = self._call("get", self._client.get_object, Key=self._key(key))
        return None if response is None else response["Body"].read()

    def put(self, key: str, data: bytes) -> None:
        self._call("put", self._client.put_object, Key=self._key(key), Body=data)

    def delete(self, key: str) -> None:
        self._call("delete", self._client.delete_object, Key=self._key(key))

    def get_tagged(self, key: str) -> tuple[bytes | None, str | None]:
        response = self._call("get", self._client.get_object, Key=self._key(key))
        return (None, None) if response is None else (response["Body"].read(), response["ETag"])

    def put_if(self, key: str, data: bytes, tag: str | None) -> bool:
        from botocore.exceptions import BotoCoreError, ClientError

        condition = {"IfMatch": tag} if tag else {"IfNoneMatch": "*"}  # S3 conditional writes
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, **condition)
            return True
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "")
            if code in ("PreconditionFailed", "ConditionalRequestConflict", "412", "409"):
                return False
            if code == "NotImplemented" and self._last_writer_wins:  # asked for: two publications race, one wins
                log.warning("S3 at %s has no conditional writes; %s is written unconditionally", self.location, key)
                self.put(key, data)
                return True
            if code == "NotImplemented":
                raise LakeError(
                    f"S3 at {self.location} cannot write conditionally (If-Match), so two jobs publishing at once "
                    "could overwrite each other's dataset unseen; set LAKE_LAST_WRITER_WINS=1 to accept that"
                ) from None
            raise LakeError(f"S3 put failed on bucket {self.bucket!r}: {code or exc}") from None
        except BotoCoreError as exc:
            raise LakeError(f"S3 put failed on bucket {self.bucket!r}: {exc}") from None

    def list(self, prefix: str) -> list[str]:
        full = self._key(prefix.rstrip("/")) + "/"
        keys: list[str] = []
        token: dict = {}
        while True:
            page = self._call("list", self._client.list_objects_v2, Prefix=full, **token) or {}
            keys += [obj["Key"][len(self.prefix) + 1 if self.prefix else 0 :] for obj in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return sorted(keys)
            token = {"ContinuationToken": page["NextContinuationToken"]}


def open_storage(settings: Settings) -> Storage:
    """The lake's storage: S3 when AWS_BUCKET is set, otherwise the LAKE_DIR folder."""
    if settings.aws_bucket:
        return S3Storage(settings, settings.lake_prefix)
    return LocalStorage(settings.lake_dir / settings.lake_prefix)
