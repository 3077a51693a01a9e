"""Multi-process training plumbing: who am I (rank), how many are we, and the few collectives
the trainer uses. ``torchrun`` sets RANK / WORLD_SIZE / LOCAL_RANK; a plain run is rank 0 of 1
and nothing here touches ``torch.distributed``.

    dist, device = setup("auto")     # init the process group when WORLD_SIZE > 1
    ...
    dist.barrier(); dist.all_reduce_sum(tensor)
    shutdown(dist)                   # destroy the group we created
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch.nn.parallel import DistributedDataParallel

from glyphfuse.core.device import resolve_device


@dataclass
class Distributed:
    """Process-group facts. Single process: rank 0 of 1, nothing initialised."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized: bool = False  # setup() called init_process_group (shutdown() must destroy it)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes checkpoints, logs and samples."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.enabled:
            torch.distributed.barrier()

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over all ranks, in place; returns it."""
        if self.enabled:
            torch.distributed.all_reduce(tensor, op=torch.distributed.ReduceOp.SUM)
        return tensor

    def wrap(self, model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
        """``model`` in DistributedDataParallel when there are several ranks, else itself."""
        if not self.enabled:
            return model
        return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def setup(device_spec: str) -> tuple[Distributed, torch.device]:
    """Read RANK / WORLD_SIZE / LOCAL_RANK, init the process group (nccl on CUDA, gloo otherwise)
    and pick this process's device (under torchrun: the GPU of its local rank)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec)
    if device.type == "cuda" and world_size > 1:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist = Distributed(rank=rank, world_size=world_size, local_rank=local_rank)
    if world_size > 1 and not torch.distributed.is_initialized():
        torch.distributed.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        dist.initialized = True
    return dist, device


def shutdown(dist: Distributed) -> None:
    """Destroy the process group that :func:`setup` created (none otherwise)."""
    if dist.initialized:
        torch.distributed.destroy_process_group()
        dist.initialized = False
