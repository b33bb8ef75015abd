"""Hugging Face datasets (`hf:stanfordnlp/imdb`), or a local folder made by `save_to_disk`."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mlplatform.data.sources.options import SourceOptions
from mlplatform.errors import DataError, SourceUnavailable


def load_hf(name: str, options: SourceOptions) -> dict[str, pd.DataFrame]:
    """Load the train and test splits; the `unsupervised` split of IMDB is ignored."""
    import datasets

    try:
        if (Path(name) / "dataset_dict.json").is_file():
            dataset = datasets.load_from_disk(name)
        else:
            dataset = datasets.load_dataset(name, cache_dir=str(options.cache_dir / "hf"))
    except FileNotFoundError as exc:
        raise DataError(f"hf:{name}: dataset not found ({exc})") from None
    except (ConnectionError, OSError) as exc:
        raise SourceUnavailable(f"hf:{name}: cannot load dataset: {exc}") from None
    frames = {}
    for split in ("train", "test"):
        if split not in dataset:
            raise DataError(f"hf:{name}: no {split!r} split (have: {', '.join(dataset)})")
        frame = dataset[split].to_pandas()
        if not {"text", "label"} <= set(frame.columns):
            raise DataError(f"hf:{name}: missing columns text,label (have: {', '.join(frame.columns)})")
        if "id" not in frame.columns:
            frame.insert(0, "id", [f"{split}_{i}" for i in range(len(frame))])
        frames[split] = frame[["id", "text", "label"]]
    return frames
