"""Batch-norm statistics per domain: training on mixed streams, adapting to real photos.

A segmenter that learns from synthetic images is evaluated on real photos, and its batch
norms carry the image statistics it was trained on. Two tools close that gap without any
real label:

* :func:`per_stream_forward` -- in training, each stream's items are normalised with their
  own batch statistics (domain-specific batch normalisation, Chang et al., CVPR 2019, with
  shared affine weights) and only the first stream's statistics reach the running
  averages used at evaluation; ``train_segmenter(..., separate_norm=True)`` uses it.
* :func:`recalibrate_norm` -- after training, the running statistics are measured anew on
  unlabeled target images (AdaBN, Li et al., 2016): a segmenter trained on synthetic
  images alone, normalised as for the real photos it will see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..ema import batch_norms, recalibrate_batchnorm

__all__ = ["per_stream_forward", "recalibrate_norm"]


def per_stream_forward(net: nn.Module, images: torch.Tensor,
                       sizes: Sequence[int]) -> torch.Tensor:
    """Logits of ``images`` with one forward pass per part of ``sizes`` items.

    Batch norms in training mode then see one part's statistics at a time. Only the first
    part moves the running statistics (the others run with momentum 0); the momenta are
    restored afterwards.

    Args:
        net: The network (in training mode for the per-part statistics to apply).
        images: ``[sum(sizes), ...]``.
        sizes: Items of each part, in order.

    Returns:
        The logits of all parts, concatenated in the order of ``images``.
    """
    norms = batch_norms(net)
    momenta = [m.momentum for m in norms]
    outputs = []
    try:
        for k, part in enumerate(images.split(list(sizes))):
            for m, momentum in zip(norms, momenta, strict=True):
                m.momentum = momentum if k == 0 else 0.0
            outputs.append(net(part))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
    return torch.cat(outputs)


def recalibrate_norm(net: nn.Module, images: Any, *, batch_size: int = 32,
                     limit: int | None = None) -> int:
    """Replace the running statistics of ``net``'s batch norms by those of ``images``.

    The statistics are reset and accumulated as exact averages over the batches, not as
    moving averages (:func:`sisgen.training.ema.recalibrate_batchnorm`); the weights and
    the momenta are kept and ``net`` is left in eval mode. Labels, where the items have
    them, are not used.

    Args:
        net: The trained network.
        images: A dataset whose items are dicts with ``"image"`` (float ``[3,H,W]`` in
            ``[0, 1]``, e.g. :class:`sisgen.integrations.LabeledDataset` or
            :class:`~sisgen.training.segmenter.SourcePairs`), or a float tensor
            ``[N,3,H,W]``.
        batch_size: Images per forward pass (batch statistics are averaged per batch, so
            very small batches bias the variance).
        limit: Use at most this many images.

    Returns:
        The number of images used.

    Raises:
        ValueError: No image, or ``net`` has no batch norm.
    """
    if not batch_norms(net):
        raise ValueError("the network has no batch norm to recalibrate")
    count = len(images) if limit is None else min(len(images), int(limit))
    if count < 1:
        raise ValueError("recalibrate_norm needs at least one image")
    parameter = next(net.parameters())

    def batches() -> Any:
        for start in range(0, count, int(batch_size)):
            stop = min(count, start + int(batch_size))
            if isinstance(images, torch.Tensor):
                yield images[start:stop]
            else:
                yield torch.stack([images[i]["image"] for i in range(start, stop)])

    recalibrate_batchnorm(net, batches(), lambda model, batch: model(
        batch.to(device=parameter.device, dtype=parameter.dtype)))
    return count
