"""Data sources for job 1. A spec such as `imdb`, `hf:stanfordnlp/imdb`, `csv:reviews.csv` or `sample:2000`
resolves to train/test frames with the columns id, text, label."""

from __future__ import annotations

import pandas as pd

from mlplatform.data.sources.csv import load_csv
from mlplatform.data.sources.hf import load_hf
from mlplatform.data.sources.imdb import load_imdb
from mlplatform.data.sources.options import IMDB_URL, SourceOptions
from mlplatform.data.sources.sample import generate_sample
from mlplatform.errors import ConfigError

__all__ = ["IMDB_URL", "SourceOptions", "describe", "load_source"]


def load_source(spec: str, options: SourceOptions) -> dict[str, pd.DataFrame]:
    """Fetch the source named by `spec` and return {"train": frame, "test": frame}."""
    kind, _, arg = spec.partition(":")
    if kind == "imdb" and not arg:
        return load_imdb(options.imdb_url, options.cache_dir)
    if kind == "hf" and arg:
        return load_hf(arg, options)
    if kind == "csv" and arg:
        return load_csv(arg, options)
    if kind == "sample":
        try:
            size = int(arg) if arg else 5000
        except ValueError:
            size = 0
        if size < 10:
            raise ConfigError(f"DATA_SOURCE {spec!r}: sample:N needs a whole number N >= 10")
        return generate_sample(size, options.seed)
    raise ConfigError(f"DATA_SOURCE {spec!r} is not one of: imdb, hf:<dataset>, csv:<path or URL>, sample[:N]")


def describe(spec: str, options: SourceOptions) -> str:
    """The source as recorded in the manifest, so a rerun knows whether it already has this data."""
    if spec == "imdb":
        return f"imdb:{options.imdb_url}"
    if spec.startswith("csv:"):
        return f"{spec} test_fraction={options.test_fraction} seed={options.seed}"
    if spec.startswith("sample"):
        return f"{spec} seed={options.seed}"
    return spec
