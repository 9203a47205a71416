"""Exponential moving average of the generator, and BatchNorm re-calibration.

The EMA copy averages the *parameters*; BatchNorm running statistics are not parameters
and an average of weights does not come with matching statistics. Before an EMA generator
is evaluated or exported, :func:`recalibrate_batchnorm` re-estimates them by running the
EMA generator itself over training batches (a cumulative average, ``momentum=None``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    for pe, p in zip(ema.parameters(), model.parameters(), strict=True):
        pe.lerp_(p.detach(), 1.0 - decay)
    for be, b in zip(ema.buffers(), model.buffers(), strict=True):
        be.copy_(b)


def ema_decay(target: float, step: int) -> float:
    """The decay at ``step``: a short horizon early (``(1+s)/(10+s)``), ``target`` later."""
    return min(target, (1.0 + step) / (10.0 + step))


def batch_norms(model: nn.Module) -> list[_BatchNorm]:
    """The BatchNorm layers of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def has_batchnorm(model: nn.Module) -> bool:
    """Whether ``model`` keeps BatchNorm running statistics."""
    return bool(batch_norms(model))


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, batches: Iterable[Any],
                          forward: Callable[[nn.Module, Any], Any]) -> int:
    """Re-estimate every BatchNorm's running mean/var of ``model`` from ``batches``.

    Args:
        model: The network (left in eval mode afterwards).
        batches: Inputs for ``forward``.
        forward: ``forward(model, batch)`` runs one batch.

    Returns:
        The number of batches used (0 when the model has no BatchNorm).
    """
    bns = batch_norms(model)
    if not bns:
        return 0
    momenta = [bn.momentum for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the recalibration batches
    model.train()
    n = 0
    try:
        for batch in batches:
            forward(model, batch)
            n += 1
    finally:
        for bn, m in zip(bns, momenta, strict=True):
            bn.momentum = m
        model.eval()
    return n
