"""Job 1, data preparation: fetch movie reviews from a source into the lake's `raw/` dataset.

Sources (DATA_SOURCE / --source):
  imdb                the Stanford aclImdb_v1.tar.gz (50k reviews); IMDB_URL points at a mirror
  hf:<dataset>        a Hugging Face dataset with text,label columns, or a save_to_disk folder
  csv:<path or URL>   review,sentiment (positive/negative) or text,label (0/1); or a folder with train.csv, test.csv
  sample[:N]          N synthetic reviews (default 5000), generated offline: NOT real IMDB data

Rerunning with the same source does nothing and says so; --force rewrites.
--stage incoming publishes the source as incoming/ instead: rows to score with jobs/batch_predictions.py, in one
`rows` file, labelled or not (a csv may have only a text or review column).
Lake and credentials come from the environment (AWS_BUCKET, AWS_ENDPOINT_URL, LAKE_DIR, LAKE_PREFIX, ...).
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mlplatform import cli
from mlplatform.data.dataprep import INCOMING, prepare_incoming, prepare_raw
from mlplatform.data.sources import SourceOptions
from mlplatform.data.storage import open_storage
from mlplatform.settings import Settings

log = logging.getLogger("data_preparation")


def _parser(settings: Settings):
    p = cli.parser(__doc__)
    cli.flag(p, "--source", "data_source", settings, dest="source")
    cli.flag(p, "--imdb-url", "imdb_url", settings)
    cli.flag(p, "--test-fraction", "test_fraction", settings)
    cli.flag(p, "--seed", "seed", settings)
    p.add_argument(
        "--stage", choices=("raw", "incoming"), default="raw", help="raw/ (to train on) or incoming/ (to score)"
    )
    p.add_argument("--force", action="store_true", help="rewrite raw/ even if it already holds this source")
    return p


def main(argv: list[str] | None = None) -> int:
    settings, args = cli.start(Path(__file__).stem, _parser, argv)

    def job() -> int:
        options = SourceOptions(args.imdb_url, settings.cache_dir, args.test_fraction, args.seed)
        storage = open_storage(settings)
        if args.stage == INCOMING:
            manifest = prepare_incoming(storage, args.source, options).manifest
            log.info(
                "wrote incoming/ at %s: %d rows, %d labelled (score them with jobs/batch_predictions.py --stage "
                "incoming)",
                storage.location,
                manifest["files"]["rows"]["rows"],
                manifest["labelled_rows"],
            )
            return 0
        outcome = prepare_raw(storage, args.source, options, force=args.force)
        files = outcome.manifest["files"]
        counts = ", ".join(f"{name}={entry['rows']} {entry['label_counts']}" for name, entry in files.items())
        if outcome.skipped:
            log.info(
                "raw/ at %s already holds %s; nothing to do (use --force to rewrite)",
                storage.location,
                outcome.manifest["source"],
            )
        else:
            log.info("wrote raw/ at %s: %s", storage.location, counts)
        return 0

    return cli.run(job, Path(__file__).stem)


if __name__ == "__main__":
    sys.exit(main())
