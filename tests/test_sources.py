import pandas as pd
import pytest

from mlplatform.data.sources import SourceOptions, load_source
from mlplatform.data.sources.sample import generate_sample
from mlplatform.errors import ConfigError, DataError, SourceUnavailable
from tests.datafiles import kaggle_csv, text_label_csv, write_imdb_tarball


@pytest.fixture
def options(tmp_path):
    return SourceOptions(cache_dir=tmp_path / "cache", test_fraction=0.25, seed=7)


def test_imdb_downloads_parses_and_caches(file_server, options, tmp_path):
    base, root = file_server
    write_imdb_tarball(root / "imdb-ok.tar.gz")
    frames = load_source("imdb", SourceOptions(imdb_url=f"{base}/imdb-ok.tar.gz", cache_dir=options.cache_dir))
    assert len(frames["train"]) == 6 and len(frames["test"]) == 6
    train = frames["train"].set_index("id")
    assert train.loc["train_pos_0", "label"] == 1 and train.loc["train_pos_0", "rating"] == 7
    assert train.loc["train_neg_1", "label"] == 0 and train.loc["train_neg_1", "rating"] == 2
    assert not frames["train"]["text"].str.contains("unlabelled").any()
    (root / "imdb-ok.tar.gz").unlink()  # the second load must come from the cache
    again = load_source("imdb", SourceOptions(imdb_url=f"{base}/imdb-ok.tar.gz", cache_dir=options.cache_dir))
    pd.testing.assert_frame_equal(again["test"], frames["test"])


@pytest.mark.parametrize("payload", [b"not a tarball at all", "truncate"])
def test_imdb_corrupt_archive_is_a_clear_error_and_not_cached(file_server, options, payload, tmp_path):
    base, root = file_server
    good = write_imdb_tarball(tmp_path / "good.tar.gz").read_bytes()
    data = good[: len(good) // 2] if payload == "truncate" else payload
    name = f"corrupt-{len(data)}.tar.gz"
    (root / name).write_bytes(data)
    with pytest.raises(DataError, match="corrupt or truncated archive"):
        load_source("imdb", SourceOptions(imdb_url=f"{base}/{name}", cache_dir=options.cache_dir))
    assert not any(options.cache_dir.glob(f"*{name}"))


def test_imdb_unreachable_url(options):
    from tests.helpers.services import free_port

    url = f"http://127.0.0.1:{free_port()}/aclImdb_v1.tar.gz"
    with pytest.raises(SourceUnavailable, match="cannot download"):
        load_source("imdb", SourceOptions(imdb_url=url, cache_dir=options.cache_dir))


def test_imdb_http_404(file_server, options):
    base, _ = file_server
    with pytest.raises(SourceUnavailable, match="404"):
        load_source("imdb", SourceOptions(imdb_url=f"{base}/missing.tar.gz", cache_dir=options.cache_dir))


@pytest.mark.parametrize("writer", [kaggle_csv, text_label_csv])
def test_csv_layouts_split_stratified(writer, tmp_path, options):
    frames = load_source(f"csv:{writer(tmp_path / 'r.csv', rows=40)}", options)
    assert len(frames["test"]) == 10 and len(frames["train"]) == 30
    assert frames["test"]["label"].value_counts().to_dict() == {0: 5, 1: 5}
    assert set(frames["train"]["id"]).isdisjoint(frames["test"]["id"])
    again = load_source(f"csv:{tmp_path / 'r.csv'}", options)
    assert again["test"]["id"].tolist() == frames["test"]["id"].tolist()  # seeded


def test_csv_over_http_and_folder_with_own_split(file_server, tmp_path, options):
    base, root = file_server
    kaggle_csv(root / "kaggle.csv")
    assert len(load_source(f"csv:{base}/kaggle.csv", options)["train"]) == 15
    folder = tmp_path / "split"
    folder.mkdir()
    text_label_csv(folder / "train.csv", rows=8)
    text_label_csv(folder / "test.csv", rows=4)
    frames = load_source(f"csv:{folder}", options)
    assert (len(frames["train"]), len(frames["test"])) == (8, 4)


@pytest.mark.parametrize(
    "content, message",
    [
        ("title,stars\nx,5\n", "missing columns"),
        ("", "empty file"),
        ("text,label\n", "empty file"),
        ("review,sentiment\ngood,positive\nbad,meh\n", "unknown label"),
        ("text,label\ngood,1\nbad,3\n", "unknown label"),
    ],
)
def test_bad_csv_gets_a_clear_error(tmp_path, options, content, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=message):
        load_source(f"csv:{path}", options)


def test_hf_dataset_from_local_folder(tmp_path, options):
    import datasets

    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"text": ["good", "bad", "great", "awful"], "label": [1, 0, 1, 0]}),
            "test": datasets.Dataset.from_dict({"text": ["fine", "poor"], "label": [1, 0]}),
            "unsupervised": datasets.Dataset.from_dict({"text": ["?"], "label": [-1]}),
        }
    ).save_to_disk(str(tmp_path / "hfdata"))
    frames = load_source(f"hf:{tmp_path / 'hfdata'}", options)
    assert frames["train"]["text"].tolist() == ["good", "bad", "great", "awful"]
    assert list(frames) == ["train", "test"]


def test_sample_is_deterministic_balanced_and_html_laden():
    a, b = generate_sample(200, seed=3), generate_sample(200, seed=3)
    pd.testing.assert_frame_equal(a["train"], b["train"])
    assert len(a["train"]) == 160 and len(a["test"]) == 40
    assert a["train"]["label"].value_counts().to_dict() == {0: 80, 1: 80}
    texts = " ".join(a["train"]["text"])
    assert "<br />" in texts and "&quot;" in texts and any(t.isupper() for t in texts.split())
    assert generate_sample(200, seed=4)["train"]["text"].tolist() != a["train"]["text"].tolist()
    assert a["train"]["text"].nunique() > 150  # varied, not a handful of templates


@pytest.mark.parametrize("spec", ["nope", "hf:", "csv:", "sample:abc", "sample:3"])
def test_unknown_source_specs(spec, options):
    with pytest.raises(ConfigError, match="DATA_SOURCE"):
        load_source(spec, options)


def test_downloads_and_archive_members_are_size_capped(file_server, options, tmp_path, monkeypatch):
    import io
    import tarfile

    from mlplatform.data import download
    from mlplatform.data.sources import imdb

    base, root = file_server
    write_imdb_tarball(root / "capped.tar.gz")
    size = (root / "capped.tar.gz").stat().st_size
    with pytest.raises(SourceUnavailable, match="download limit"):
        download.cached_download(f"{base}/capped.tar.gz", tmp_path / "c1", max_bytes=size - 1)
    assert not any((tmp_path / "c1").glob("*capped*")), "nothing half-downloaded is kept"

    bomb = root / "bomb.tar.gz"
    with tarfile.open(bomb, "w:gz") as tar:  # one "review" of 2 MiB of zeros: it compresses to almost nothing
        member = tarfile.TarInfo("aclImdb/train/pos/0_9.txt")
        member.size = 2 << 20
        tar.addfile(member, io.BytesIO(b"\0" * member.size))
    monkeypatch.setattr(imdb, "MAX_REVIEW_BYTES", 1 << 20)
    with pytest.raises(DataError, match="size limits"):
        load_source("imdb", SourceOptions(imdb_url=f"{base}/bomb.tar.gz", cache_dir=options.cache_dir))


def test_a_csv_over_the_limit_is_refused(file_server, options, monkeypatch):
    from mlplatform.data.sources import csv as csv_source

    base, root = file_server
    text_label_csv(root / "big.csv", rows=40)
    monkeypatch.setattr(csv_source, "MAX_CSV_BYTES", 100)
    for location in (f"{base}/big.csv", str(root / "big.csv")):
        with pytest.raises(DataError, match="CSV limit"):
            load_source(f"csv:{location}", options)
