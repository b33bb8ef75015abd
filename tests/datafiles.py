"""Small input files the tests generate: an aclImdb-shaped tarball and CSVs in both layouts."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pandas as pd

POSITIVE = ["A wonderful, moving film.<br /><br />Great acting &amp; a superb score.", "Loved it, brilliant!"]
NEGATIVE = ["Dull and <i>boring</i>.<br />A waste of time.", "Terrible script, awful pacing &quot;ugh&quot;."]


def write_imdb_tarball(path: Path, per_class: int = 3) -> Path:
    """aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt plus an unsup split that must be ignored."""
    with tarfile.open(path, "w:gz") as tar:

        def add(name: str, text: str) -> None:
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))

        for split in ("train", "test"):
            for i in range(per_class):
                add(f"aclImdb/{split}/pos/{i}_{7 + i % 4}.txt", f"{split} {POSITIVE[i % 2]} #{i}")
                add(f"aclImdb/{split}/neg/{i}_{1 + i % 4}.txt", f"{split} {NEGATIVE[i % 2]} #{i}")
        add("aclImdb/train/unsup/0_0.txt", "unlabelled")
        add("aclImdb/README", "readme")
    return path


def kaggle_csv(path: Path, rows: int = 20) -> Path:
    pd.DataFrame(
        {
            "review": [(POSITIVE if i % 2 else NEGATIVE)[i % 2] + f" #{i}" for i in range(rows)],
            "sentiment": ["positive" if i % 2 else "negative" for i in range(rows)],
        }
    ).to_csv(path, index=False)
    return path


def text_label_csv(path: Path, rows: int = 20) -> Path:
    pd.DataFrame(
        {
            "text": [(POSITIVE if i % 2 else NEGATIVE)[i % 2] + f" #{i}" for i in range(rows)],
            "label": [i % 2 for i in range(rows)],
        }
    ).to_csv(path, index=False)
    return path


def easy_reviews_csv(path: Path, rows: int = 600, seed: int = 0) -> Path:
    """Plainly polar reviews (no negations, no contrary notes) in the text,label layout: a task the tiny
    test BERT learns in a few epochs, so serving tests can rely on a model that learned something."""
    import random

    from mlplatform.data.sources.sample import _FILLER, _NEGATIVE, _POSITIVE, _SUBJECTS

    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(rows):
        positive = i % 2 == 1
        words = _POSITIVE if positive else _NEGATIVE
        sentences = [f"{rng.choice(_SUBJECTS)} was {rng.choice(words)}." for _ in range(rng.randint(2, 3))]
        sentences.append(rng.choice(_FILLER).format(year=2001, topic="jazz", place="Lisbon", genre="drama", job="chef"))
        rng.shuffle(sentences)
        texts.append(" ".join(sentences))
        labels.append(int(positive))
    pd.DataFrame({"text": texts, "label": labels}).to_csv(path, index=False)
    return path
