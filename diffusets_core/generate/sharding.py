"""Dataset generation under torchrun, without importing the training package: which process generates which
batch, and how the processes wait for and tell each other.

Global batch ``k`` (ECGs ``k * batch_size`` to ``(k + 1) * batch_size - 1`` of the conditions file) is generated
by rank ``k % world`` (:func:`batches_of_rank`), so each batch has the same contents, hence the same ECGs, under
any number of processes. Without a process group (one process) every function here is the one-process case.
"""

from __future__ import annotations

import os
from typing import Any

import torch.distributed as dist

__all__ = ["init_ranks", "process_group", "rank_and_world", "batches_of_rank", "barrier", "first_error_everywhere"]


def process_group() -> Any:
    """``torch.distributed`` when a process group is initialised (under torchrun), else None."""
    return dist if dist.is_available() and dist.is_initialized() else None


def init_ranks(device: Any) -> tuple[int, int]:
    """``(rank, world)``: joins torchrun's process group (gloo on CPU, nccl on CUDA) when WORLD_SIZE > 1."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if getattr(device, "type", str(device)) == "cuda" else "gloo")
    return dist.get_rank(), dist.get_world_size()


def rank_and_world() -> tuple[int, int]:
    """``(rank, world)`` of this process in the initialised process group; ``(0, 1)`` without one."""
    group = process_group()
    return (group.get_rank(), group.get_world_size()) if group is not None else (0, 1)


def batches_of_rank(n_batches: int, rank: int, world: int) -> list[int]:
    """The global batches rank ``rank`` of ``world`` generates: ``k`` in ``0 .. n_batches - 1`` with
    ``k % world == rank``, in order."""
    return [k for k in range(n_batches) if k % world == rank]


def barrier() -> None:
    """Wait for every rank (nothing to wait for without a process group)."""
    group = process_group()
    if group is not None:
        group.barrier()


def first_error_everywhere(err: str | None) -> str | None:
    """Share rank 0's error (or None) with every rank, so all stop together instead of hanging at a barrier."""
    group = process_group()
    if group is None:
        return err
    box = [err]
    group.broadcast_object_list(box, src=0)
    return box[0]
