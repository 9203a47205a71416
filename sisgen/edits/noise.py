"""Noise-region marks: ``resample_noise`` and the ``meta["noise_mask"]`` it writes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..errors import SisgenInputError
from ..labelmap import NOISE_MASK_KEY, LabelMap
from ..vocab import Vocabulary
from .base import Edit, register_edit
from .checks import check_class, check_int, is_number, resolve_class


def noise_mask(labelmap: LabelMap) -> np.ndarray | None:
    """The map's noise mask, checked against its size (``None`` when absent)."""
    mask = labelmap.meta.get(NOISE_MASK_KEY)
    if mask is None:
        return None
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != labelmap.shape:
        raise SisgenInputError(
            f"meta[{NOISE_MASK_KEY!r}] is {mask.shape}, the map is {labelmap.shape}"
        )
    return mask


def _check_region(region: Any) -> list[float]:
    """``[y0, x0, y1, x1]``: fractions of the height and width with ``y0 < y1``, ``x0 < x1``."""
    ok = (isinstance(region, Sequence) and not isinstance(region, str) and len(region) == 4
          and all(is_number(v) for v in region))
    if ok:
        y0, x0, y1, x1 = (float(v) for v in region)
        ok = 0 <= y0 < y1 <= 1 and 0 <= x0 < x1 <= 1
    if not ok:
        raise SisgenInputError(
            f"region must be [y0, x0, y1, x1], fractions with y0 < y1 and x0 < x1, "
            f"got {region!r}"
        )
    return [float(v) for v in region]


@register_edit("resample_noise")
class ResampleNoise(Edit):
    """Mark a region whose generator noise is to be drawn anew; labels do not change.

    The target is the intersection of what is given: pixels of ``class``, pixels inside
    ``region``, pixels of ``instance`` (an id, or ``random``: one instance drawn uniformly
    among the nonzero instance ids on the pixels selected by ``class`` and ``region``).
    The boolean ``H×W`` target is OR-ed into ``meta["noise_mask"]`` (created when absent);
    geometric edits that run later (flip, scale, crop, pad) transform it with the labels.
    The generator re-draws noise only where the mask is set.

    Args:
        class_: Class name or id (``class`` in a recipe).
        instance: An instance id, or ``"random"``.
        region: ``[y0, x0, y1, x1]`` as fractions of ``H`` and ``W`` (rows
            ``floor(y0*H)`` to ``ceil(y1*H)``, end exclusive; same for columns).
        p: Probability of applying.

    """

    class_params = ("class",)

    def __init__(self, class_: int | str | None = None, instance: int | str | None = None,
                 region: Sequence[float] | None = None, p: float = 1.0):
        super().__init__(p)
        if class_ is None and instance is None and region is None:
            raise SisgenInputError("give at least one of class, instance, region")
        self.class_ = None if class_ is None else check_class(class_)
        self.instance = instance if instance in (None, "random") else check_int(
            instance, "instance", minimum=1, what="a positive instance id or 'random'")
        self.region = None if region is None else _check_region(region)

    def apply(
        self, labelmap: LabelMap, rng: np.random.Generator, vocab: Vocabulary
    ) -> tuple[LabelMap, dict[str, Any]]:
        """OR the target into ``meta["noise_mask"]``; records ``target`` and ``pixels``."""
        out = labelmap.copy()
        H, W = labelmap.shape
        mask = np.ones((H, W), dtype=bool)
        target: dict[str, Any] = {}
        if self.class_ is not None:
            c = resolve_class(vocab, self.class_)
            mask &= labelmap.semantic == c
            target["class"] = c
        if self.region is not None:
            y0, x0, y1, x1 = self.region
            box = np.zeros((H, W), dtype=bool)
            box[int(math.floor(y0 * H)):int(math.ceil(y1 * H)),
                int(math.floor(x0 * W)):int(math.ceil(x1 * W))] = True
            mask &= box
            target["region"] = list(self.region)
        if self.instance is not None:
            inst = labelmap.instance
            chosen: int | None
            if inst is None:
                chosen = None
            elif self.instance == "random":
                candidates = np.unique(inst[mask & (inst != 0)])
                chosen = int(rng.choice(candidates)) if len(candidates) else None
            else:
                chosen = self.instance
            mask = mask & (inst == chosen) if chosen is not None else np.zeros_like(mask)
            target["instance"] = chosen
        previous = noise_mask(out)
        out.meta[NOISE_MASK_KEY] = mask if previous is None else previous | mask
        return out, {"target": target, "pixels": int(mask.sum())}
