import json
import threading
from datetime import timedelta

import pandas as pd
import pytest

from mlplatform.data import lake
from mlplatform.data.storage import LocalStorage
from mlplatform.errors import DataError, LakeError


def _frames(tag: str) -> dict[str, pd.DataFrame]:
    return {
        split: pd.DataFrame(
            {"id": [f"{split}{i}" for i in range(4)], "text": [f"{tag} {i}" for i in range(4)], "label": [0, 1, 0, 1]}
        )
        for split in lake.SPLITS
    }


def test_publish_then_read_roundtrip(storage):
    manifest = lake.publish(storage, "raw", _frames("v1"), source="unit")
    assert manifest["files"]["train"]["rows"] == 4
    assert manifest["files"]["train"]["label_counts"] == {"negative": 2, "positive": 2}
    stored = json.loads(storage.get("raw/_manifest.json"))
    assert stored["source"] == "unit" and stored["created_at"]
    _, frames = lake.read_dataset(storage, "raw")
    assert frames["test"]["text"].tolist() == ["v1 0", "v1 1", "v1 2", "v1 3"]


def test_reader_rejects_a_file_that_does_not_match_its_checksum(storage):
    manifest = lake.publish(storage, "raw", _frames("v1"), source="unit")
    storage.put(manifest["files"]["train"]["key"], b"tampered")
    with pytest.raises(LakeError, match="checksum"):
        lake.read_dataset(storage, "raw")


def test_failure_mid_publication_keeps_previous_manifest_and_data(storage, monkeypatch):
    lake.publish(storage, "raw", _frames("v1"), source="first")
    before = storage.get("raw/_manifest.json")
    real_put = type(storage).put

    def failing_put(self, key, data):
        if key.endswith("test.parquet"):
            raise OSError("disk full")
        real_put(self, key, data)

    monkeypatch.setattr(type(storage), "put", failing_put)
    with pytest.raises(OSError):
        lake.publish(storage, "raw", _frames("v2"), source="second")
    monkeypatch.undo()
    assert storage.get("raw/_manifest.json") == before
    manifest, frames = lake.read_dataset(storage, "raw")
    assert manifest["source"] == "first" and frames["train"]["text"].iloc[0] == "v1 0"


def test_old_generations_are_collected_but_the_previous_one_stays(storage, monkeypatch):
    monkeypatch.setattr(lake, "GC_GRACE", timedelta(0))
    first = lake.publish(storage, "raw", _frames("v1"), source="a")
    second = lake.publish(storage, "raw", _frames("v2"), source="b")
    third = lake.publish(storage, "raw", _frames("v3"), source="c")
    generations = {key.split("/")[1] for key in storage.list("raw") if key.count("/") == 2}
    assert generations == {second["generation"], third["generation"]}
    assert first["generation"] not in generations


def test_young_generations_are_kept_for_publications_still_running(storage):
    first = lake.publish(storage, "raw", _frames("v1"), source="a")
    lake.publish(storage, "raw", _frames("v2"), source="b")
    lake.publish(storage, "raw", _frames("v3"), source="c")
    assert storage.get(first["files"]["train"]["key"]) is not None, "within the grace period nothing is deleted"


def test_concurrent_publications_never_delete_each_others_files(tmp_path):
    storage = LocalStorage(tmp_path)  # S3 below: moto checks If-Match, but not atomically under threads
    conflicts, manifests = [], []

    def publish(worker):
        for round_ in range(3):
            try:
                manifests.append(lake.publish(storage, "raw", _frames(f"w{worker}r{round_}"), source=f"{worker}"))
            except lake.PublicationConflict as exc:
                conflicts.append(exc)

    threads = [threading.Thread(target=publish, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(manifests) + len(conflicts) == 12 and manifests
    replaced = [m["previous_generation"] for m in manifests]
    assert len(set(replaced)) == len(replaced), "two publications replaced the same generation: one was lost"
    manifest, frames = lake.read_dataset(storage, "raw")
    assert manifest["generation"] in {m["generation"] for m in manifests} and len(frames["train"]) > 0
    for landed in manifests[-2:]:  # the current one and the one before it keep their files
        assert all(storage.get(entry["key"]) for entry in landed["files"].values())


def test_a_publication_overtaken_by_another_fails_and_leaves_the_winner(storage, monkeypatch):
    first = lake.publish(storage, "raw", _frames("v1"), source="first")
    real = lake.to_parquet_bytes
    overtaken = []

    def write_and_get_overtaken(frame):
        if not overtaken:  # while the slow publication writes its files, another one lands
            overtaken.append(None)
            overtaken[0] = lake.publish(storage, "raw", _frames("fast"), source="fast")
        return real(frame)

    monkeypatch.setattr(lake, "to_parquet_bytes", write_and_get_overtaken)
    with pytest.raises(lake.PublicationConflict, match="moved on while this job ran") as raised:
        lake.publish(storage, "raw", _frames("slow"), source="slow")
    monkeypatch.undo()
    assert f"now holds generation {overtaken[0]['generation']}" in str(raised.value)
    manifest, frames = lake.read_dataset(storage, "raw")
    assert manifest["source"] == "fast" and manifest["previous_generation"] == first["generation"]
    assert frames["train"]["text"].iloc[0] == "fast 0"
    slow_files = [k for k in storage.list("raw") if k.count("/") == 2]
    assert {k.split("/")[1] for k in slow_files} == {first["generation"], manifest["generation"]}


def test_a_job_that_read_an_older_stage_cannot_publish_over_a_newer_one(storage):
    first = lake.publish(storage, "raw", _frames("v1"), source="first")
    lake.publish(storage, "raw", _frames("v2"), source="second")
    with pytest.raises(lake.PublicationConflict, match="rerun the job"):
        lake.publish(storage, "raw", _frames("stale"), source="stale", replaces=first["generation"])
    with pytest.raises(lake.PublicationConflict):
        lake.publish(storage, "clean", _frames("x"), source="x", replaces="20260101T000000Z-deadbeef")
    assert lake.read_manifest(storage, "raw")["source"] == "second"
    assert lake.publish(storage, "clean", _frames("x"), source="x", replaces=None)["previous_generation"] is None


def test_missing_dataset_says_which_job_to_run(storage):
    with pytest.raises(LakeError, match="no dataset at .*clean/"):
        lake.read_dataset(storage, "clean")


@pytest.mark.parametrize("key", ["../x", "/etc/passwd", "raw/../../x", "raw//x"])
def test_keys_cannot_escape_the_lake(tmp_path, key):
    with pytest.raises(LakeError, match="invalid lake key"):
        LocalStorage(tmp_path).put(key, b"x")


@pytest.mark.parametrize(
    "frame, message",
    [
        (pd.DataFrame({"id": ["a"], "text": ["t"]}), "missing column"),
        (pd.DataFrame({"id": [], "text": [], "label": []}), "no rows"),
        (pd.DataFrame({"id": ["a", "b"], "text": ["t", "u"], "label": [0, 5]}), "unknown label"),
        (pd.DataFrame({"id": ["a", "a"], "text": ["t", "u"], "label": [0, 1]}), "duplicate ids"),
    ],
)
def test_validate_frame_rejects_bad_datasets(frame, message):
    with pytest.raises(DataError, match=message):
        lake.validate_frame("train", frame)


def test_a_pinned_generation_outlives_collection_and_can_be_read_back(storage, monkeypatch):
    monkeypatch.setattr(lake, "GC_GRACE", timedelta(0))
    first = lake.publish(storage, "raw", _frames("v1"), source="a")
    assert lake.pin(storage, "raw", first["generation"], "movie@v1")
    assert not lake.pin(storage, "raw", "20200101T000000Z-gone0000", "movie@v9"), "nothing to pin"
    for tag in ("v2", "v3", "v4"):
        lake.publish(storage, "raw", _frames(tag), source=tag)
    manifest, frames = lake.read_dataset(storage, "raw", generation=first["generation"])
    assert manifest == first and frames["train"]["text"].iloc[0] == "v1 0"
    assert lake.pins(storage, "raw") == {first["generation"]: ["movie@v1"]}

    assert lake.unpin(storage, "raw", "movie@v1") == [first["generation"]]
    lake.publish(storage, "raw", _frames("v5"), source="v5")
    with pytest.raises(LakeError, match="not in the lake"):
        lake.read_dataset(storage, "raw", generation=first["generation"])


@pytest.mark.parametrize("document", [b"[1, 2]", b'"text"', b'{"generation": 3}', b"\xff\xfe"])
def test_a_manifest_that_is_no_manifest_is_a_lake_error(storage, document):
    storage.put(f"raw/{lake.MANIFEST}", document)
    with pytest.raises(LakeError, match="corrupt.*--force"):
        lake.read_manifest(storage, "raw")
    with pytest.raises(LakeError, match="corrupt"):
        lake.read_dataset(storage, "raw")


def test_force_republishes_over_a_corrupt_manifest(storage):
    from mlplatform.data.dataprep import prepare_raw
    from mlplatform.data.sources import SourceOptions

    storage.put(f"raw/{lake.MANIFEST}", b"[]")
    with pytest.raises(LakeError, match="corrupt"):
        prepare_raw(storage, "sample:40", SourceOptions())
    manifest = prepare_raw(storage, "sample:40", SourceOptions(), force=True).manifest
    assert lake.read_manifest(storage, "raw")["generation"] == manifest["generation"]
    assert len(lake.read_dataset(storage, "raw")[1]["train"]) > 0


@pytest.mark.parametrize("allowed", [False, True])
def test_a_store_without_conditional_writes_is_refused_unless_last_writer_wins_is_set(s3_env, monkeypatch, allowed):
    from botocore.exceptions import ClientError

    from mlplatform.data.storage import open_storage
    from mlplatform.settings import Settings

    monkeypatch.setenv("LAKE_LAST_WRITER_WINS", "1" if allowed else "0")
    storage = open_storage(Settings.load())
    real_put = storage._client.put_object

    def no_conditions(**kwargs):  # an S3 API that refuses If-Match / If-None-Match, as some stores do
        if "IfMatch" in kwargs or "IfNoneMatch" in kwargs:
            raise ClientError({"Error": {"Code": "NotImplemented", "Message": "no"}}, "PutObject")
        return real_put(**kwargs)

    monkeypatch.setattr(storage._client, "put_object", no_conditions)
    frames = _frames("x")
    if allowed:
        assert lake.publish(storage, "raw", frames, "test")["generation"]
    else:
        with pytest.raises(LakeError, match="LAKE_LAST_WRITER_WINS"):
            lake.publish(storage, "raw", frames, "test")
        assert lake.read_manifest(storage, "raw") is None, "nothing published"
