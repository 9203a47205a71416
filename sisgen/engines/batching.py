"""Batches outside an engine's batch range: split into chunks, or padded.

Compiled engines accept a range of batch sizes: a TensorRT plan its optimization profile's
``min..max`` (``sisgen export tensorrt --batch 8`` builds ``1..8``), an AOTInductor package
``1..batch`` (or exactly ``batch`` when exported without a dynamic axis). Rather than fail on
``--batch-size 32`` with such an engine, a larger batch runs as consecutive chunks of the
largest size the engine takes, and a smaller one (below the profile's minimum) is padded by
repeating its last sample, whose extra outputs are dropped. Samples never influence each
other in inference, so the images are those of a batch run whole. The engine warns once,
naming the size to rebuild with to run such batches whole.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

__all__ = ["batch_size", "run_in_range"]

Output = Any  # a tensor, or a dict of tensors by name


def batch_size(feeds: dict[str, Any]) -> int:
    """The batch size of named inputs (the first axis of the first tensor given)."""
    return next(int(v.shape[0]) for v in feeds.values() if v is not None)


def run_in_range(fn: Callable[[dict[str, Any]], Output], feeds: dict[str, Any], low: int,
                 high: int, on_split: Callable[[int], None] | None = None) -> Output:
    """``fn(feeds)`` for any batch, calling ``fn`` only on batches of ``low..high`` samples.

    Args:
        fn: Runs one batch of named tensor inputs; returns a tensor or a dict of tensors
            whose first axis is the batch.
        feeds: Named inputs (``None`` values pass through).
        low: Smallest batch ``fn`` takes (>= 1).
        high: Largest batch ``fn`` takes.
        on_split: Called with the batch size when a batch is not run whole (to warn).

    Returns:
        What ``fn`` returns for the whole batch.
    """
    if not 1 <= low <= high:
        raise ValueError(f"batch range must satisfy 1 <= low <= high, not {low}..{high}")
    b = batch_size(feeds)
    if low <= b <= high:
        return fn(feeds)
    if on_split is not None and b > high:
        on_split(b)
    outs = []
    for start in range(0, b, high):
        part = {k: None if v is None else v[start:start + high] for k, v in feeds.items()}
        n = batch_size(part)
        if n < low:
            part = {k: None if v is None else _pad(v, low) for k, v in part.items()}
        outs.append(_head(fn(part), n))
    return _cat(outs)


def _pad(t: torch.Tensor, size: int) -> torch.Tensor:
    """``t`` with its last sample repeated up to ``size`` samples."""
    extra = t[-1:].expand(size - t.shape[0], *t.shape[1:])
    return torch.cat([t, extra])


def _head(out: Output, n: int) -> Output:
    if isinstance(out, dict):
        return {k: v[:n] for k, v in out.items()}
    return out[:n]


def _cat(outs: list[Output]) -> Output:
    if len(outs) == 1:
        return outs[0]
    if isinstance(outs[0], dict):
        return {k: torch.cat([o[k] for o in outs]) for k in outs[0]}
    return torch.cat([torch.as_tensor(o) for o in outs])
