"""Lake generations kept for registered versions: the data a version was trained on, and the data the
promotion gate scored it on, stay in the lake until the version is deleted.

  python jobs/pins.py           # list the pins of clean/
  python jobs/pins.py --prune   # drop the pins of versions the registry no longer has

A version's training is reproduced with its run's `dataset_generation` tag:
`python jobs/finetune.py --dataset-generation <generation>` plus the run's hyperparameters.
"""

from __future__ import annotations

import logging
import re

from mlplatform.data import lake
from mlplatform.data.storage import open_storage
from mlplatform.errors import PlatformError

log = logging.getLogger(__name__)
STAGE = "clean"
_HOLDER = re.compile(r"(?P<name>.+)@v(?P<version>[0-9]+)(?P<eval>\.eval)?")


def holder(name: str, version: str, evaluation: bool = False) -> str:
    return f"{name}@v{version}{'.eval' if evaluation else ''}"


def pin_generation(settings, name: str, version: str, generation: str | None, evaluation: bool = False) -> None:
    """Pin `generation` of clean/ for a version; a lake this process cannot reach only gets a warning."""
    if not generation:
        return
    try:
        if not lake.pin(open_storage(settings), STAGE, generation, holder(name, version, evaluation)):
            log.warning("clean/ generation %s of %s version %s is no longer in the lake", generation, name, version)
    except (PlatformError, OSError) as exc:
        log.warning("could not pin clean/ generation %s for %s version %s: %s", generation, name, version, exc)


def prune(registry) -> list[str]:
    """Unpin the holders whose registered version is gone; returns them."""
    storage = open_storage(registry.settings)
    gone = []
    for holders in lake.pins(storage, STAGE).values():
        for held in holders:
            match = _HOLDER.fullmatch(held)
            if match and registry.version_exists(match["name"], match["version"]) is False:
                lake.unpin(storage, STAGE, held)
                gone.append(held)
    return gone
