"""What the sources share: options that come from env vars in job 1."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mlplatform.settings import DEFAULT_IMDB_URL as IMDB_URL


@dataclass(frozen=True)
class SourceOptions:
    """Knobs shared by the sources; each comes from an env var in job 1."""

    imdb_url: str = IMDB_URL
    cache_dir: Path = Path.home() / ".cache" / "mlplatform"
    test_fraction: float = 0.2
    seed: int = 42
    unlabelled: bool = False  # incoming/: a csv may lack labels, and a single file is not split
