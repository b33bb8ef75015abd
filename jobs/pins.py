"""Lake generations kept for registered versions: the data a version was trained on, and the data the
promotion gate scored it on, stay in the lake until the version is deleted.

  python jobs/pins.py           # list the pins of clean/
  python jobs/pins.py --prune   # drop the pins of versions the registry no longer has

A version's training is reproduced with its run's `dataset_generation` tag:
`python jobs/finetune.py --dataset-generation <generation>` plus the run's hyperparameters.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mlplatform import cli
from mlplatform.data import lake
from mlplatform.data.pins import STAGE, prune
from mlplatform.data.storage import open_storage
from mlplatform.registry import Registry
from mlplatform.settings import Settings


def _parser(settings: Settings):
    p = cli.parser(__doc__)
    p.add_argument("--prune", action="store_true", help="unpin the versions the registry no longer has")
    return p


def main(argv: list[str] | None = None) -> int:
    settings, args = cli.start(Path(__file__).stem, _parser, argv)

    def job() -> int:
        if args.prune:
            for held in prune(Registry(settings)):
                print(f"unpinned {held}")
        for generation, holders in sorted(lake.pins(open_storage(settings), STAGE).items()):
            print(f"clean/{generation}: {', '.join(sorted(holders))}")
        return 0

    return cli.run(job, Path(__file__).stem)


if __name__ == "__main__":
    sys.exit(main())
