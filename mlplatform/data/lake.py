"""Datasets in the lake: `<prefix>/<stage>/` holds `train.parquet`, `test.parquet` and `_manifest.json`.

Each publication writes its files under a fresh generation folder (`<stage>/<generation>/train.parquet`),
verifies them, and only then replaces `<stage>/_manifest.json`. A job that dies midway therefore leaves the
previous manifest and the files it lists untouched. Readers trust only what the manifest lists, and check
every file's sha256.

A generation a registered model version was trained or evaluated on is pinned (`<stage>/_pins/<generation>/
<holder>`) and never collected while the pin is there.

The manifest is swapped with a conditional write (S3 If-Match, a file lock on disk): a publication that
another one overtook fails with `PublicationConflict` instead of silently replacing it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd

from mlplatform.data.storage import Storage
from mlplatform.errors import DataError, LakeError

log = logging.getLogger(__name__)

MANIFEST = "_manifest.json"
GC_GRACE = timedelta(hours=1)  # older than any publication takes
SPLITS = ("train", "test")
LABELS = {0: "negative", 1: "positive"}
UNLABELLED = -1  # incoming/ rows whose true label is not known
REQUIRED_COLUMNS = ("id", "text", "label")
CURRENT = object()  # publish(replaces=CURRENT): whatever generation is current when the publication starts


class PublicationConflict(LakeError):
    """Another publication of the stage landed while this one ran (or since its caller read the stage)."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def validate_frame(name: str, frame: pd.DataFrame, unlabelled: bool = False) -> pd.DataFrame:
    """Check the dataset contract (id str, text str, label 0/1, or -1 where `unlabelled` rows are allowed) and
    return a frame with those dtypes."""
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)} (have: {', '.join(map(str, frame.columns))})")
    if frame.empty:
        raise DataError(f"{name}: no rows")
    labels = pd.to_numeric(frame["label"], errors="coerce")
    bad = frame.loc[~labels.isin([*LABELS, *([UNLABELLED] if unlabelled else [])]), "label"]
    if len(bad):
        raise DataError(f"{name}: unknown label(s) {sorted(map(str, bad.unique()))[:5]}; expected 0/1")
    out = frame.copy()
    out["id"] = out["id"].astype(str)
    out["text"] = out["text"].fillna("").astype(str)
    out["label"] = labels.astype("int64")
    if out["id"].duplicated().any():
        raise DataError(f"{name}: duplicate ids, e.g. {out.loc[out['id'].duplicated(), 'id'].iloc[0]!r}")
    return out.reset_index(drop=True)


def label_counts(frame: pd.DataFrame) -> dict[str, int]:
    counts = frame["label"].value_counts()
    return {LABELS[k]: int(counts.get(k, 0)) for k in LABELS}


def to_parquet_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False, engine="pyarrow")
    return buffer.getvalue()


def read_manifest(storage: Storage, stage: str, missing_if_corrupt: bool = False) -> dict | None:
    """The stage's current manifest, or None when nothing was published yet (or, with `missing_if_corrupt`, when
    what is there is no manifest: `--force` republishes over it)."""
    return _parse_manifest(storage, stage, storage.get(f"{stage}/{MANIFEST}"), missing_if_corrupt)


def _parse_manifest(storage: Storage, stage: str, raw: bytes | None, missing_if_corrupt: bool = False) -> dict | None:
    if raw is None:
        return None
    where = f"{storage.location}/{stage}/{MANIFEST}"
    try:
        manifest = json.loads(raw)
        problem = None if isinstance(manifest, dict) else f"a JSON {type(manifest).__name__}, not an object"
        if problem is None and not (
            isinstance(manifest.get("generation"), str) and isinstance(manifest.get("files"), dict)
        ):
            problem = "no generation or no files"
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        problem = f"not valid JSON: {exc}"
    if problem is None:
        return manifest
    if missing_if_corrupt:
        log.warning("%s is corrupt (%s); it is replaced", where, problem)
        return None
    raise LakeError(f"{where} is corrupt ({problem}); rerun the job that writes {stage}/ with --force to replace it")


def manifest_digest(manifest: dict) -> str:
    """A stable digest of a manifest: it changes whenever any listed file changes."""
    return sha256(json.dumps(manifest, sort_keys=True).encode())


def publish(
    storage: Storage,
    stage: str,
    frames: dict[str, pd.DataFrame],
    source: str,
    replaces=CURRENT,
    over_corrupt: bool = False,
    **extra,
) -> dict:
    """Write the frames as a new generation, verify them, then switch the manifest to it.

    `replaces` is the generation the caller based its work on (None: the stage was empty); the switch fails
    with `PublicationConflict` if the stage moved on from it, or from what was current when this started.
    `over_corrupt` (a job's --force) replaces a current manifest that cannot be read."""
    raw, tag = storage.get_tagged(f"{stage}/{MANIFEST}")
    previous = _parse_manifest(storage, stage, raw, missing_if_corrupt=over_corrupt)
    previous_generation = (previous or {}).get("generation")
    if replaces is not CURRENT and replaces != previous_generation:
        raise _conflict(storage, stage, previous_generation, replaces)
    generation = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ") + "-" + uuid.uuid4().hex[:8]
    files = {}
    for name, frame in frames.items():
        data = to_parquet_bytes(frame)
        key = f"{stage}/{generation}/{name}.parquet"
        storage.put(key, data)
        files[name] = {
            "key": key,
            "sha256": sha256(data),
            "bytes": len(data),
            "rows": len(frame),
            "label_counts": label_counts(frame) if "label" in frame and name in SPLITS else None,
        }
    for entry in files.values():
        stored = storage.get(entry["key"])
        if stored is None or sha256(stored) != entry["sha256"]:
            raise LakeError(f"verification failed for {storage.location}/{entry['key']}; manifest not updated")
    manifest = {
        "stage": stage,
        "source": source,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "generation": generation,
        "previous_generation": previous_generation,
        "files": files,
        **extra,
    }
    document = json.dumps(manifest, indent=2, sort_keys=True).encode()
    storage.put(f"{stage}/{generation}/{MANIFEST}", document)  # the generation's own copy, for reading it later
    if not storage.put_if(f"{stage}/{MANIFEST}", document, tag):
        for key in [entry["key"] for entry in files.values()] + [f"{stage}/{generation}/{MANIFEST}"]:
            storage.delete(key)
        landed = (read_manifest(storage, stage) or {}).get("generation")
        raise _conflict(storage, stage, landed, previous_generation)
    _collect_garbage(storage, stage, keep={generation, previous_generation})
    log.info("published %s/%s (generation %s)", storage.location, stage, generation)
    return manifest


def _conflict(storage: Storage, stage: str, landed: str | None, expected: str | None) -> PublicationConflict:
    return PublicationConflict(
        f"{storage.location}/{stage}/ moved on while this job ran: it now holds generation {landed}, not {expected}. "
        f"It was left as it is (this job's files were removed); rerun the job to build on the new {stage}/."
    )


PINS = "_pins"


def pin(storage: Storage, stage: str, generation: str, holder: str) -> bool:
    """Keep `generation` of `stage` for `holder` (e.g. `movie-sentiment-v3`); False when it is already gone."""
    if not any(key.split("/")[1] == generation for key in storage.list(f"{stage}/{generation}")):
        return False
    storage.put(
        f"{stage}/{PINS}/{generation}/{holder}", json.dumps({"pinned_at": datetime.now(UTC).isoformat()}).encode()
    )
    return True


def unpin(storage: Storage, stage: str, holder: str) -> list[str]:
    """Drop `holder`'s pins on `stage`; returns the generations it held."""
    held = [key for key in storage.list(f"{stage}/{PINS}") if key.rsplit("/", 1)[-1] == holder]
    for key in held:
        storage.delete(key)
    return [key.split("/")[2] for key in held]


def pins(storage: Storage, stage: str) -> dict[str, list[str]]:
    """{generation: [holders]} of `stage`."""
    held: dict[str, list[str]] = {}
    for key in storage.list(f"{stage}/{PINS}"):
        _, _, generation, holder = key.split("/", 3)
        held.setdefault(generation, []).append(holder)
    return held


def _collect_garbage(storage: Storage, stage: str, keep: set) -> None:
    """Drop generations other than the current and previous ones, once they are older than `grace`: a younger
    one may belong to a publication still running in another process, which must not lose its files. Pinned
    generations stay."""
    cutoff = datetime.now(UTC) - GC_GRACE
    keep = keep | set(pins(storage, stage))
    for key in storage.list(stage):
        parts = key.split("/")
        if len(parts) == 3 and parts[1] not in keep and _generation_time(parts[1]) < cutoff:
            storage.delete(key)


def _generation_time(generation: str) -> datetime:
    try:
        return datetime.strptime(generation.split("-", 1)[0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    except ValueError:
        return datetime.now(UTC)  # not ours: never collected


def read_dataset(storage: Storage, stage: str, generation: str | None = None) -> tuple[dict, dict[str, pd.DataFrame]]:
    """Load every file the stage's manifest lists (or an older generation's), after checking its sha256."""
    if generation:
        manifest = _parse_manifest(storage, stage, storage.get(f"{stage}/{generation}/{MANIFEST}"))
        if manifest is None:
            raise LakeError(
                f"generation {generation} of {storage.location}/{stage}/ is not in the lake (collected: only the "
                "current, the previous and pinned generations are kept)"
            )
        return manifest, _read_files(storage, manifest)
    manifest = read_manifest(storage, stage)
    if manifest is None:
        raise LakeError(f"no dataset at {storage.location}/{stage}/ (no {MANIFEST}); run the previous job first")
    return manifest, _read_files(storage, manifest)


def _read_files(storage: Storage, manifest: dict) -> dict[str, pd.DataFrame]:
    frames = {}
    for name, entry in manifest["files"].items():
        data = storage.get(entry["key"])
        if data is None:
            raise LakeError(f"{storage.location}/{entry['key']} is listed in the manifest but missing")
        if sha256(data) != entry["sha256"]:
            raise LakeError(f"{storage.location}/{entry['key']} does not match its manifest checksum")
        frames[name] = pd.read_parquet(io.BytesIO(data))
    return frames
