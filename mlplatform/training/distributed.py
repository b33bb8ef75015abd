"""Data-parallel training under `torchrun` or `accelerate launch`: which process this is, the process group,
and rank 0's decisions passed to the others.

Both launchers set RANK, LOCAL_RANK and WORLD_SIZE. Rank 0 alone talks to MLflow and writes outputs; every rank
reads the same lake data, trains in lockstep (the Trainer wraps the model in DistributedDataParallel: gloo on
CPU, NCCL on GPUs) and takes part in every evaluation, whose results the Trainer gathers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

log = logging.getLogger(__name__)
TIMEOUT = timedelta(minutes=30)  # a collective waits this long for a slow rank (rank 0 logs a model meanwhile)


class LaunchStopped(KeyboardInterrupt):
    """The launcher stopped this rank (SIGTERM): another rank failed, or the launch was interrupted."""


@dataclass(frozen=True)
class Launch:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launch_of(settings) -> Launch:
    return Launch(settings.rank, settings.local_rank, settings.world_size)


def start(launch: Launch) -> None:
    """Join the launch's process group (before anything else may need rank 0's decisions)."""
    if not launch.distributed:
        return
    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        return
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(launch.local_rank)
    dist.init_process_group(backend, timeout=TIMEOUT)
    log.info("rank %d of %d joined the %s process group", launch.rank, launch.world_size, backend)


def trainer_flags(launch: Launch) -> dict:
    """TrainingArguments that make the Trainer data-parallel on this launch: on CPUs it must be told (gloo)."""
    if not launch.distributed:
        return {}
    import torch

    flags = {"ddp_timeout": int(TIMEOUT.total_seconds())}
    if not torch.cuda.is_available():
        flags.update(use_cpu=True, ddp_backend="gloo")
    return flags


def share(launch: Launch, value):
    """Rank 0's `value`, on every rank."""
    if not launch.distributed:
        return value
    import torch.distributed as dist

    box = [value if launch.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def finish(launch: Launch) -> None:
    if not launch.distributed:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
