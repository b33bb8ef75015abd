"""Batch scoring: score a lake dataset with the model a registry alias names, and publish the answers as
the lake's `predictions/` dataset (one row per text: id, label, score, probabilities, true label when known,
token count, model name, version, run id and alias).

The input is clean/ test by default, or incoming/ (filled by `jobs/data_preparation.py --stage incoming` from
any source, labelled or not). The model runs on MLFlask's backend with every core; progress is shown.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from mlplatform import cli
from mlplatform.registry import Registry
from mlplatform.serving.batch import BATCH_ROWS, score_dataset
from mlplatform.settings import Settings

log = logging.getLogger("batch_predictions")


def _parser(settings: Settings):
    p = cli.parser(__doc__)
    cli.flag(p, "--model-name", "model_name", settings)
    cli.flag(p, "--alias", "model_alias", settings, dest="alias")
    p.add_argument("--stage", default="clean", choices=("clean", "raw", "incoming"), help="lake dataset [clean]")
    p.add_argument("--split", help="file of the dataset: train or test (clean, raw), rows (incoming) [test / rows]")
    p.add_argument("--batch-rows", type=int, default=BATCH_ROWS, help=f"texts per servable call [{BATCH_ROWS}]")
    return p


def main(argv: list[str] | None = None) -> int:
    settings, args = cli.start(Path(__file__).stem, _parser, argv)

    def job() -> int:
        job_settings = settings.replace(model_name=args.model_name)
        outcome = score_dataset(
            job_settings, Registry(job_settings), args.alias, args.stage, args.split, max(1, args.batch_rows)
        )
        manifest = outcome.manifest
        counts = manifest["files"]["predictions"]
        log.info(
            "wrote predictions/ (generation %s): %d rows scored by %s in %.1f s (%.0f rows/s, %s)",
            manifest["generation"],
            counts["rows"],
            manifest["source"],
            outcome.seconds,
            outcome.rows_per_second,
            manifest["backend"],
        )
        return 0

    return cli.run(job, Path(__file__).stem)


if __name__ == "__main__":
    sys.exit(main())
