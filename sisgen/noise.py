"""Noise is an input: every random quantity a generator consumes is drawn here, from seeds.

A model describes its noise with a *noise spec* (``SISGenerator.noise_spec()``, also stored
in ``config.json`` and in the export metadata): ``{"shape": [...], "distribution":
"normal"}`` plus an optional ``layout``. Drawing it outside every network, on the CPU with
one ``torch.Generator`` per sample seed, is what makes one seed give one image in torch,
ONNX Runtime and TensorRT alike, and lets a noise tensor be resampled locally.

This module is deliberately low in the layering (torch only): models, engines, the trainer
and the export checks all draw their noise through it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

__all__ = ["draw_noise", "expand_noise", "is_replicated", "noise_from_seeds"]


def is_replicated(spec: dict[str, Any]) -> bool:
    """Whether the spec's noise is one ``C`` vector per image repeated over ``H×W`` (OASIS)."""
    return spec.get("layout", "pixel") == "replicated" and len(spec.get("shape") or ()) == 3


def draw_noise(spec: dict[str, Any], batch: int, generator: torch.Generator | None = None,
               compact: bool = False) -> torch.Tensor | None:
    """``batch`` standard-normal noise tensors of the spec's shape, from ``generator``.

    ``layout: replicated`` (OASIS: one vector per image over every pixel) draws ``C``
    values per sample and repeats them over the ``H×W`` of a ``[C,H,W]`` shape; the
    default ``pixel`` layout draws every element.

    Args:
        spec: The noise spec (see the module docstring).
        batch: Samples to draw.
        generator: The random source (``None``: torch's global generator).
        compact: Return replicated noise as the drawn ``[batch, C]`` vectors, not repeated
            over ``H×W`` (:func:`expand_noise` repeats them, on whatever device they are).
            The draw is the same; other layouts ignore it.

    Returns:
        ``[batch, *shape]`` float32 noise (``[batch, C]`` for compact replicated noise), or
        ``None`` for a spec without a shape.

    Raises:
        ValueError: An unsupported distribution or layout, or a replicated layout whose
            shape is not ``[C,H,W]``.
    """
    shape = tuple(spec.get("shape") or ())
    if not shape:
        return None
    if spec.get("distribution", "normal") != "normal":
        raise ValueError(f"unsupported noise distribution {spec['distribution']!r}")
    layout = spec.get("layout", "pixel")
    if layout == "replicated":
        if len(shape) != 3:
            raise ValueError(f"replicated noise needs a [C,H,W] shape, got {list(shape)}")
        z = torch.randn((batch, shape[0], 1, 1), generator=generator)
        return z.view(batch, shape[0]) if compact else z.expand(batch, *shape).contiguous()
    if layout != "pixel":
        raise ValueError(f"unknown noise layout {layout!r} (pixel, replicated)")
    return torch.randn((batch, *shape), generator=generator)


def noise_from_seeds(spec: dict[str, Any], seeds: Sequence[int],
                     device: torch.device | str = "cpu", compact: bool = False
                     ) -> torch.Tensor | None:
    """Standard-normal noise, one tensor per seed, stacked to ``[B, *shape]``.

    Drawn on the CPU with a per-seed ``torch.Generator`` (bit-identical across machines),
    then moved to ``device``. Returns ``None`` for models without noise. See
    :func:`draw_noise` for the spec's ``layout`` and ``compact``.
    """
    if not spec.get("shape"):
        return None
    out = [draw_noise(spec, 1, torch.Generator().manual_seed(int(s)), compact=compact)
           for s in seeds]
    return torch.cat(out).to(device)


def expand_noise(noise: torch.Tensor | None, spec: dict[str, Any]) -> torch.Tensor | None:
    """Compact replicated noise ``[B, C]`` repeated to the spec's ``[B, C, H, W]``.

    Runs where ``noise`` is (on the GPU the host sends ``C`` floats per image instead of
    ``C×H×W``); the result is contiguous and equal, bit for bit, to what
    ``noise_from_seeds(spec, seeds)`` returns. Noise that is already full-size (every
    other layout, or replicated noise a noise-region mark made vary per pixel) and
    ``None`` pass through unchanged.
    """
    if noise is None or noise.dim() != 2 or not is_replicated(spec):
        return noise
    b, c = noise.shape
    return noise.view(b, c, 1, 1).expand(b, c, *spec["shape"][1:]).contiguous()
