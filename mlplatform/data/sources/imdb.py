"""The Stanford aclImdb_v1 archive: `aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt`; `unsup` is ignored."""

from __future__ import annotations

import re
import tarfile
import zlib
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from mlplatform.data.download import cached_download
from mlplatform.errors import DataError

MAX_REVIEW_BYTES = 1 << 20  # the longest IMDB review is 14 KB: a bigger member is not a review
MAX_REVIEWS = 500_000  # ten times the archive's 50,000
_MEMBER = re.compile(r"(?:^|/)aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")


def load_imdb(url: str, cache_dir: Path) -> dict[str, pd.DataFrame]:
    """Download (once) and parse the archive into train/test frames, keeping the star rating."""
    archive = cached_download(url, cache_dir)
    rows: dict[str, list[dict]] = {"train": [], "test": []}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tqdm(tar, desc="parse aclImdb", unit=" files", disable=None):
                match = _MEMBER.search(member.name)
                if not match or not member.isfile():
                    continue
                split, polarity, number, rating = match.groups()
                if member.size > MAX_REVIEW_BYTES or len(rows["train"]) + len(rows["test"]) >= MAX_REVIEWS:
                    raise DataError(f"{url}: {member.name} is over the size limits of a review archive")
                text = tar.extractfile(member).read(MAX_REVIEW_BYTES).decode("utf-8", errors="replace")
                rows[split].append(
                    {
                        "id": f"{split}_{polarity}_{number}",
                        "text": text,
                        "label": int(polarity == "pos"),
                        "rating": int(rating),
                    }
                )
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        archive.unlink(missing_ok=True)  # a corrupt cache entry would fail every later run
        raise DataError(f"{url}: corrupt or truncated archive ({exc}); the cached copy was removed") from None
    for split, found in rows.items():
        if not found:
            raise DataError(f"{url}: archive has no aclImdb/{split}/{{pos,neg}}/*.txt reviews")
    return {split: pd.DataFrame(found).sort_values("id", ignore_index=True) for split, found in rows.items()}
