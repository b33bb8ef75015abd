"""MLFlask's store on disk: atomic state, name locks, bounded action log."""

import pytest

from apps.mlflask.store import Busy, ModelStore


def test_install_and_remove_update_state_atomically(tmp_path):
    store = ModelStore(tmp_path)
    model_dir = tmp_path / "staged"
    model_dir.mkdir()
    (model_dir / "weights").write_text("w")
    record = {"name": "m", "deploy_id": "d1", "run_id": "r", "deployed_at": "t"}
    assert store.install("m", record, model_dir) is None
    assert ModelStore(tmp_path).read_state() == {"m": record}, "a new process sees the same deployed set"
    assert (store.model_path(record) / "weights").read_text() == "w"
    assert store.remove("m") == record and store.read_state() == {}
    assert not list(tmp_path.glob(".state-*")), "no temp files left behind"


def test_a_second_deploy_of_the_same_name_is_busy(tmp_path):
    store = ModelStore(tmp_path)
    with store.name_lock("m"):
        with pytest.raises(Busy):
            with store.name_lock("m"):
                pass
        with store.name_lock("other"):
            pass


def test_action_log_is_newest_first_and_bounded_in_bytes(tmp_path):
    store = ModelStore(tmp_path, log_max_bytes=4096)
    for i in range(500):
        store.log("failed_request", i=i, error="x" * 200)
    entries = store.logs(1000)
    assert entries[0]["i"] == 499 and [e["i"] for e in entries] == sorted((e["i"] for e in entries), reverse=True)
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("logs.jsonl*"))
    assert on_disk <= 4096 + 300, "the current file and one rotated file, within the byte budget"
    assert len(entries) < 30


def test_prune_spares_young_folders_and_start_cleans_old_leftovers(tmp_path):
    import os
    import time

    store = ModelStore(tmp_path, grace_seconds=60)
    for deploy in ("d1", "d2"):
        staged = store.new_staging()
        (staged / "weights").write_text(deploy)
        store.install("m", {"name": "m", "deploy_id": deploy, "run_id": "r", "deployed_at": "t"}, staged)
    assert (tmp_path / "models" / "d1").is_dir(), "a replaced model younger than the grace period stays"
    old = time.time() - 3600
    leftover = store.new_staging()
    (tmp_path / ".state-killed").write_text("{}")
    for path in (tmp_path / "models" / "d1", leftover, tmp_path / ".state-killed"):
        os.utime(path, (old, old))
    young = store.new_staging()
    ModelStore(tmp_path, grace_seconds=60)  # a worker starting
    assert not leftover.exists() and not (tmp_path / ".state-killed").exists() and young.exists()
    store.remove("other")  # any state change prunes, under the lock
    assert not (tmp_path / "models" / "d1").exists() and (tmp_path / "models" / "d2").is_dir()
