"""Job 2, clean data: strip HTML from the lake's `raw/` reviews with BeautifulSoup and write `clean/`.

`<br />` becomes a space, entities are unescaped and whitespace is normalised. Rows that end up empty or
carry an invalid label are quarantined: counted in the manifest, logged, and kept in quarantine.parquet.
Identical train/test texts are reported. Large inputs use every core.

Rerunning on the same raw/ does nothing and says so; --force rewrites.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mlplatform import cli
from mlplatform.data.dataprep import clean_raw
from mlplatform.data.storage import open_storage
from mlplatform.settings import Settings

log = logging.getLogger("clean_data")


def _parser(settings: Settings):
    p = cli.parser(__doc__)
    p.add_argument("--force", action="store_true", help="rewrite clean/ even if it is up to date with raw/")
    return p


def main(argv: list[str] | None = None) -> int:
    settings, args = cli.start(Path(__file__).stem, _parser, argv)

    def job() -> int:
        storage = open_storage(settings)
        outcome = clean_raw(storage, force=args.force)
        manifest = outcome.manifest
        if outcome.skipped:
            log.info("clean/ at %s is up to date with raw/; nothing to do (use --force to rewrite)", storage.location)
            return 0
        rows = {name: entry["rows"] for name, entry in manifest["files"].items()}
        log.info(
            "wrote clean/ at %s: %s; quarantined %s; train/test overlap %d",
            storage.location,
            rows,
            manifest["quarantined"],
            manifest["train_test_overlap"],
        )
        return 0

    return cli.run(job, Path(__file__).stem)


if __name__ == "__main__":
    sys.exit(main())
