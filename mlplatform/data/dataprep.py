"""Jobs 1 and 2 as functions: fetch a source into `raw/`, and clean `raw/` into `clean/`."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import pandas as pd

from mlplatform.data import lake
from mlplatform.data.cleaning import clean_frame, overlap
from mlplatform.data.sources import SourceOptions, describe, load_source
from mlplatform.data.storage import Storage

log = logging.getLogger(__name__)
INCOMING = "incoming"


@dataclass(frozen=True)
class Outcome:
    """What a job did: `skipped` when the lake already held the same result."""

    manifest: dict
    skipped: bool


def prepare_raw(storage: Storage, spec: str, options: SourceOptions, force: bool = False) -> Outcome:
    """Fetch `spec` and publish it as `raw/`, unless `raw/` already holds that very source."""
    source = describe(spec, options)
    current = lake.read_manifest(storage, "raw", missing_if_corrupt=force)
    if current and current.get("source") == source and not force:
        return Outcome(current, skipped=True)
    frames = {name: lake.validate_frame(f"{spec} {name}", frame) for name, frame in load_source(spec, options).items()}
    replaces = (current or {}).get("generation")
    manifest = lake.publish(storage, "raw", frames, source, replaces=replaces, over_corrupt=force)
    return Outcome(manifest, skipped=False)


def prepare_incoming(storage: Storage, spec: str, options: SourceOptions) -> Outcome:
    """Fetch `spec` as `incoming/`: data to score (job `batch_predictions`), labelled or not, in one `rows` file."""
    frames = load_source(spec, replace(options, unlabelled=True))
    rows = pd.concat(list(frames.values()), ignore_index=True)
    if rows["id"].astype(str).duplicated().any():  # a source's own splits may reuse ids: keep them apart
        rows["id"] = [f"{split}/{i}" for split, frame in frames.items() for i in frame["id"]]
    rows = lake.validate_frame(f"{spec} (incoming)", rows, unlabelled=True)
    labelled = int((rows["label"] != lake.UNLABELLED).sum())
    current = lake.read_manifest(storage, INCOMING)
    manifest = lake.publish(
        storage,
        INCOMING,
        {"rows": rows},
        describe(spec, options),
        replaces=(current or {}).get("generation"),
        labelled_rows=labelled,
    )
    return Outcome(manifest, skipped=False)


def clean_raw(storage: Storage, force: bool = False) -> Outcome:
    """Clean `raw/` into `clean/`, quarantining rows that end up empty or carry an invalid label."""
    raw_manifest, frames = lake.read_dataset(storage, "raw")
    input_digest = lake.manifest_digest(raw_manifest)
    current = lake.read_manifest(storage, "clean", missing_if_corrupt=force)
    if current and current.get("input_digest") == input_digest and not force:
        return Outcome(current, skipped=True)
    cleaned, quarantined, counts = {}, [], {}
    for split in lake.SPLITS:
        cleaned[split], bad = clean_frame(frames[split], split)
        counts[split] = bad["reason"].value_counts().to_dict()
        quarantined.append(bad)
        for _, row in bad.iterrows():
            log.warning("quarantined %s row %s: %s", split, row["id"], row["reason"])
    outputs = dict(cleaned)
    quarantine = pd.concat(quarantined, ignore_index=True)
    if len(quarantine):
        outputs["quarantine"] = quarantine
    leaks = overlap(cleaned["train"], cleaned["test"])
    if leaks:
        log.warning("%d test reviews have a text identical to a train review", leaks)
    manifest = lake.publish(
        storage,
        "clean",
        outputs,
        source=raw_manifest["source"],
        replaces=(current or {}).get("generation"),
        over_corrupt=force,
        input_digest=input_digest,
        quarantined={split: {k: int(v) for k, v in c.items()} for split, c in counts.items()},
        train_test_overlap=leaks,
    )
    return Outcome(manifest, skipped=False)
