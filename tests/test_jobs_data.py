"""Jobs 1-2 end to end through main([...]), in both lake modes; assertions are on what landed in the lake."""

import json

import pytest

from jobs import clean_data, data_preparation
from mlplatform.data import lake
from tests.datafiles import kaggle_csv, text_label_csv, write_imdb_tarball


def _manifest(storage, stage):
    raw = storage.get(f"{stage}/_manifest.json")
    return json.loads(raw) if raw else None


def test_sample_then_clean_then_idempotent_reruns(storage, caplog):
    assert data_preparation.main(["--source", "sample:300"]) == 0
    raw = _manifest(storage, "raw")
    assert raw["files"]["train"]["rows"] == 240 and raw["files"]["test"]["rows"] == 60
    assert data_preparation.main(["--source", "sample:300"]) == 0
    assert _manifest(storage, "raw") == raw
    assert "nothing to do" in caplog.text

    assert clean_data.main([]) == 0
    clean = _manifest(storage, "clean")
    _, frames = lake.read_dataset(storage, "clean")
    texts = " ".join(frames["train"]["text"])
    assert "<br" not in texts and "&quot;" not in texts and "<i>" not in texts
    assert clean["input_digest"] == lake.manifest_digest(raw)
    assert clean["quarantined"] == {"train": {}, "test": {}}
    assert clean_data.main([]) == 0
    assert _manifest(storage, "clean") == clean

    assert data_preparation.main(["--source", "sample:300", "--force"]) == 0
    assert _manifest(storage, "raw")["generation"] != raw["generation"]
    assert clean_data.main([]) == 0  # raw changed, so clean is redone
    assert _manifest(storage, "clean")["generation"] != clean["generation"]


def test_imdb_from_local_url(storage, file_server, monkeypatch):
    base, root = file_server
    write_imdb_tarball(root / "acl.tar.gz", per_class=4)
    monkeypatch.setenv("IMDB_URL", f"{base}/acl.tar.gz")
    assert data_preparation.main([]) == 0
    manifest, frames = lake.read_dataset(storage, "raw")
    assert manifest["source"] == f"imdb:{base}/acl.tar.gz"
    assert manifest["files"]["test"]["label_counts"] == {"negative": 4, "positive": 4}
    assert "rating" in frames["train"].columns
    assert clean_data.main([]) == 0
    _, clean = lake.read_dataset(storage, "clean")
    assert clean["train"]["text"].str.contains("Great acting & a superb score").any()


@pytest.mark.parametrize("writer", [kaggle_csv, text_label_csv])
def test_csv_both_layouts(storage, tmp_path, writer):
    path = writer(tmp_path / "reviews.csv", rows=50)
    assert data_preparation.main(["--source", f"csv:{path}", "--test-fraction", "0.2"]) == 0
    manifest = _manifest(storage, "raw")
    assert (manifest["files"]["train"]["rows"], manifest["files"]["test"]["rows"]) == (40, 10)


def test_hf_local_dataset(storage, tmp_path):
    import datasets

    datasets.DatasetDict(
        {
            split: datasets.Dataset.from_dict({"text": ["good<br />film", "bad"], "label": [1, 0]})
            for split in ("train", "test")
        }
    ).save_to_disk(str(tmp_path / "hf"))
    assert data_preparation.main(["--source", f"hf:{tmp_path / 'hf'}"]) == 0
    assert clean_data.main([]) == 0
    _, frames = lake.read_dataset(storage, "clean")
    assert frames["train"]["text"].tolist() == ["good film", "bad"]
    assert frames["train"]["label"].tolist() == [1, 0]


@pytest.mark.parametrize(
    "content, message",
    [
        ("title,stars\nx,5\n", "missing columns"),
        ("", "empty file"),
        ("review,sentiment\ngood,positive\nbad,meh\n", "unknown label"),
    ],
)
def test_bad_csv_exits_non_zero_and_leaves_the_lake_as_it_was(storage, tmp_path, capsys, content, message):
    assert data_preparation.main(["--source", "sample:50"]) == 0
    before = _manifest(storage, "raw")
    keys_before = storage.list("raw")
    path = tmp_path / "bad.csv"
    path.write_text(content)
    assert data_preparation.main(["--source", f"csv:{path}"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("data_preparation: error:")
    assert _manifest(storage, "raw") == before and storage.list("raw") == keys_before


def test_unreachable_url_writes_nothing(storage, capsys):
    from tests.helpers.services import free_port

    url = f"http://127.0.0.1:{free_port()}/x.csv"
    assert data_preparation.main(["--source", f"csv:{url}"]) == 1
    assert "cannot download" in capsys.readouterr().err
    assert storage.list("raw") == []


def test_corrupt_archive_exits_non_zero(storage, file_server, capsys, monkeypatch):
    base, root = file_server
    (root / "broken.tar.gz").write_bytes(b"\x1f\x8b\x08garbage")
    monkeypatch.setenv("IMDB_URL", f"{base}/broken.tar.gz")
    assert data_preparation.main([]) == 1
    assert "corrupt or truncated archive" in capsys.readouterr().err
    assert storage.list("raw") == []


def test_failure_mid_publication_leaves_previous_clean(storage, monkeypatch):
    assert data_preparation.main(["--source", "sample:100"]) == 0
    assert clean_data.main([]) == 0
    before, frames_before = lake.read_dataset(storage, "clean")
    assert data_preparation.main(["--source", "sample:120"]) == 0
    real_put = type(storage).put

    def crash_on_test(self, key, data):
        if key.startswith("clean/") and key.endswith("test.parquet"):
            raise KeyboardInterrupt  # the job dies between its two data files
        real_put(self, key, data)

    monkeypatch.setattr(type(storage), "put", crash_on_test)
    assert clean_data.main([]) == 130
    monkeypatch.undo()
    after, frames_after = lake.read_dataset(storage, "clean")
    assert after == before
    assert frames_after["train"].equals(frames_before["train"])


def test_clean_without_raw_is_a_clear_error(storage, capsys):
    assert clean_data.main([]) == 1
    assert "no dataset at" in capsys.readouterr().err


def test_quarantined_rows_are_counted_and_kept(storage, tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("text,label\n" + "".join(f"review number {i},{i % 2}\n" for i in range(20)) + "<br />,1\n")
    assert data_preparation.main(["--source", f"csv:{path}", "--test-fraction", "0.5"]) == 0
    assert clean_data.main([]) == 0
    manifest, frames = lake.read_dataset(storage, "clean")
    counts = manifest["quarantined"]
    assert counts["train"].get("empty_text", 0) + counts["test"].get("empty_text", 0) == 1
    assert frames["quarantine"]["reason"].tolist() == ["empty_text"]
    assert len(frames["train"]) + len(frames["test"]) == 20


def test_missing_variable_is_named(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("AWS_BUCKET", "lake")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "key")
    with pytest.raises(SystemExit) as exited:
        data_preparation.main(["--source", "sample:50"])
    assert exited.value.code == 1
    assert "AWS_BUCKET is set but AWS_SECRET_ACCESS_KEY is missing" in capsys.readouterr().err
    assert not (tmp_path / "lake").exists()


def test_help_lists_env_vars_and_defaults(capsys):
    with pytest.raises(SystemExit) as exit_info:
        data_preparation.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "DATA_SOURCE" in out and "default: imdb" in out and "IMDB_URL" in out


def test_incoming_takes_labelled_and_unlabelled_rows_and_leaves_raw_alone(storage, tmp_path, capsys):
    assert data_preparation.main(["--source", "sample:100"]) == 0
    raw = _manifest(storage, "raw")
    path = tmp_path / "new.csv"
    path.write_text('text,label\n"A fine film.",positive\n"Dull.",\n"Lovely<br />work.",1\n')
    assert data_preparation.main(["--stage", "incoming", "--source", f"csv:{path}"]) == 0
    incoming = _manifest(storage, "incoming")
    assert incoming["labelled_rows"] == 2 and incoming["files"]["rows"]["rows"] == 3
    _, frames = lake.read_dataset(storage, "incoming")
    assert list(frames["rows"]["label"]) == [1, lake.UNLABELLED, 1]
    only_texts = tmp_path / "texts.csv"
    only_texts.write_text("review\nGreat.\nAwful.\n")
    assert data_preparation.main(["--stage", "incoming", "--source", f"csv:{only_texts}"]) == 0
    assert _manifest(storage, "incoming")["labelled_rows"] == 0
    assert _manifest(storage, "raw") == raw, "raw/ is what the model trains on: incoming/ never touches it"
    assert data_preparation.main(["--source", f"csv:{only_texts}"]) == 1
    assert "missing columns" in capsys.readouterr().err, "raw/ still needs labels"
