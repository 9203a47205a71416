"""Data-parallel training over ``torch.distributed`` (what ``torchrun`` sets up).

GAN steps run the discriminator several times per backward pass and alternate two
optimizers, which does not fit DDP's one-forward-one-backward bookkeeping. As StyleGAN2/3
do, sisgen keeps plain modules and averages the gradients itself: after each backward
pass every gradient is all-reduced (one flat buffer per optimizer), so every rank applies
the same update and the weights stay identical. Buffers (BatchNorm running statistics)
follow rank 0 at the start of each step, DDP's ``broadcast_buffers`` behaviour; on GPUs
BatchNorm can instead be converted to SyncBatchNorm.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        """Whether there is more than one process."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 does all file I/O."""
        return self.rank == 0


def setup(device_type: str) -> DistInfo:
    """Join the process group ``torchrun`` describes (``RANK``/``WORLD_SIZE``), if any.

    NCCL on GPUs, gloo on CPUs. A single process (no ``WORLD_SIZE`` or 1) joins nothing.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    info = DistInfo(int(os.environ["RANK"]), world, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend, timeout=datetime.timedelta(minutes=30))
    return info


def teardown() -> None:
    """Leave the process group (after the last collective)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _tensors(modules: Iterable[nn.Module], buffers: bool) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for m in modules:
        out += list(m.buffers()) if buffers else [p.data for p in m.parameters()]
    return out


def broadcast_state(modules: Iterable[nn.Module], buffers_only: bool = False) -> None:
    """Copy rank 0's parameters (and buffers) to every rank."""
    if not dist.is_initialized():
        return
    modules = list(modules)
    tensors = _tensors(modules, buffers=True)
    if not buffers_only:
        tensors += _tensors(modules, buffers=False)
    for t in tensors:
        dist.broadcast(t, src=0)


def average_gradients(params: list[nn.Parameter], world_size: int) -> None:
    """All-reduce (mean) the gradients of ``params`` through one flat buffer.

    Parameters without a gradient contribute zeros, so every rank reduces the same layout.
    """
    if world_size <= 1 or not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat.div_(world_size)
    offset = 0
    for p, g in zip(params, grads, strict=True):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def all_true(flag: bool, device: torch.device) -> bool:
    """Whether ``flag`` holds on every rank (so all ranks skip a bad step together)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item() > 0.5)


def gather_objects(obj: Any, world_size: int) -> list[Any]:
    """Every rank's ``obj`` (a list on every rank; ``[obj]`` without a process group)."""
    if world_size <= 1 or not dist.is_initialized():
        return [obj]
    out: list[Any] = [None] * world_size
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every rank (no-op without a process group)."""
    if dist.is_initialized():
        dist.barrier()
