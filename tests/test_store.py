"""MLFlask's store on disk: atomic state, name locks, bounded action log."""

import pytest

from apps.mlflask import store as store_module
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


def test_action_log_is_newest_first_and_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(store_module, "_LOG_MAX_BYTES", 2000)
    monkeypatch.setattr(store_module, "_LOG_KEEP_LINES", 5)
    store = ModelStore(tmp_path)
    for i in range(100):
        store.log("failed_request", i=i)
    entries = store.logs(1000)
    assert entries[0]["i"] == 99 and [e["i"] for e in entries] == sorted((e["i"] for e in entries), reverse=True)
    assert len(entries) < 40
