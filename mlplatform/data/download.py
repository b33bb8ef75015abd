"""Streamed, cached downloads with a progress bar. Partial files never reach the cache."""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

import requests
from tqdm import tqdm

from mlplatform.errors import SourceUnavailable

log = logging.getLogger(__name__)
_CHUNK = 1 << 20
MAX_DOWNLOAD_BYTES = 2 << 30  # the IMDB archive is 84 MB; a source 25x that is a mistake or an attack


def cached_download(url: str, cache_dir: Path, timeout: float = 30.0, max_bytes: int = MAX_DOWNLOAD_BYTES) -> Path:
    """Download `url` once into `cache_dir` and return the local path.

    The file is written to a `.part` name and renamed only when the byte count matches Content-Length,
    so an interrupted or truncated transfer is never mistaken for a good archive later.
    """
    cache_dir = Path(cache_dir)
    name = url.rstrip("/").rsplit("/", 1)[-1] or "download"
    target = cache_dir / f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{name}"
    if target.is_file():
        log.info("using cached %s", target)
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        with requests.get(url, stream=True, timeout=timeout) as response:
            response.raise_for_status()
            expected = int(response.headers.get("Content-Length") or 0) or None
            if expected is not None and expected > max_bytes:
                raise SourceUnavailable(f"{url} is {expected} bytes, over the {max_bytes}-byte download limit")
            received = 0
            with (
                open(part, "wb") as fh,
                tqdm(total=expected, unit="B", unit_scale=True, desc=f"download {name}", disable=None) as bar,
            ):
                for chunk in response.iter_content(_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:  # a server that sends more than it announced, or announces nothing
                        raise SourceUnavailable(f"{url} sends over the {max_bytes}-byte download limit")
                    fh.write(chunk)
                    bar.update(len(chunk))
        if expected is not None and received != expected:
            raise SourceUnavailable(f"download of {url} truncated: got {received} of {expected} bytes")
        os.replace(part, target)
    except requests.RequestException as exc:
        raise SourceUnavailable(f"cannot download {url}: {type(exc).__name__}: {exc}") from None
    finally:
        part.unlink(missing_ok=True)
    return target
