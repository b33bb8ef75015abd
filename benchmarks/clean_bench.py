"""Job 2 end to end (lake read, clean, lake write) against a bare single-process BeautifulSoup loop.

Both run in this process on the same 50,000 generated reviews. Target: ratio <= 1.5.
Usage: python benchmarks/clean_bench.py [--rows 50000]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

from bs4 import BeautifulSoup

from mlplatform.data import lake
from mlplatform.data.dataprep import clean_raw
from mlplatform.data.sources.sample import generate_sample
from mlplatform.data.storage import LocalStorage


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=50_000)
    args = p.parse_args()
    logging.disable(logging.WARNING)
    frames = generate_sample(args.rows, seed=1)
    texts = [t for frame in frames.values() for t in frame["text"]]
    with tempfile.TemporaryDirectory() as tmp:
        storage = LocalStorage(Path(tmp))
        lake.publish(storage, "raw", frames, source="bench")

        start = time.perf_counter()
        for text in texts:
            BeautifulSoup(text, "html.parser").get_text()
        bare = time.perf_counter() - start

        start = time.perf_counter()
        clean_raw(storage, force=True)
        job = time.perf_counter() - start

    print(f"reviews:                     {len(texts)}")
    print(f"bare BeautifulSoup loop:     {bare:.2f} s")
    print(f"job 2 end to end:            {job:.2f} s")
    print(f"ratio job/bare:              {job / bare:.2f}  (target <= 1.5)")


if __name__ == "__main__":
    main()
