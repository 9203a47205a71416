"""Rendering one ToyCity sample, and :class:`ToyCity`, the dataset of rendered samples.

Determinism. The scene (layout, objects, colours) is drawn from a stream seeded with a
hash of ``(seed, split, index)``; the pixel noise from one seeded with ``(seed, split,
index, H, W)``. So a sample is a pure function of those arguments, independent of call
order, and the same index at another resolution shows the same street.
"""

from __future__ import annotations

import numpy as np

from ...labelmap import LabelMap
from ...vocab import get_vocabulary
from .layout import Street
from .objects import draw_objects, place_objects
from .painting import label_maps, paint, shadow_mask
from .primitives import Canvas
from .rand import Rand, seed_int


def render(seed: int, split: str, index: int, size: tuple[int, int]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one ToyCity sample.

    Args:
        seed: Dataset seed.
        split: Split name; each split is its own seed stream.
        index: Sample index.
        size: ``(H, W)`` of the output.

    Returns:
        ``(semantic, instance, photo)``: ``H×W`` uint8 class ids, ``H×W`` int32
        Cityscapes-style instance ids (``class*1000 + k`` on thing pixels, 0 elsewhere) and
        the ``H×W×3`` uint8 RGB photo.
    """
    h, w = int(size[0]), int(size[1])
    if h < 8 or w < 8:
        raise ValueError(f"ToyCity size must be at least 8x8, got {h}x{w}")
    rng = Rand(seed_int("toycity", seed, split, index))
    pix_rng = np.random.default_rng(seed_int("toycity-pixels", seed, split, index, h, w))
    street = Street(rng, h, w)
    objects, shadows = place_objects(street, rng)
    prim, columns = street.rasterise()
    canvas = Canvas(street, prim)
    draw_objects(canvas, objects)
    semantic, instance = label_maps(canvas)
    photo = paint(street, canvas, columns, semantic, shadow_mask(shadows, h, w), pix_rng)
    return semantic, instance, photo


class ToyCity:
    """The procedural ToyCity dataset: paired (label map, photo) street scenes.

    Args:
        size: ``(H, W)`` of every sample; any size from 8×8 up works, and the layout
            scales with it (the horizon, the perspective and all object sizes are relative).
        seed: Dataset seed.
        split: Split name; ``train`` and ``val`` (or any other name) draw different scenes.

    Example:
        >>> lm, photo = ToyCity((64, 128)).sample(0)
        >>> lm.semantic.shape, photo.shape
        ((64, 128), (64, 128, 3))
    """

    def __init__(self, size: tuple[int, int] = (128, 256), seed: int = 0,
                 split: str = "train") -> None:
        self.size = (int(size[0]), int(size[1]))
        self.seed = int(seed)
        self.split = str(split)
        self.vocabulary = get_vocabulary("toycity")

    def sample_id(self, index: int) -> str:
        """The sample id of ``index``: ``toycity_{split}_{index:06d}``."""
        return f"toycity_{self.split}_{int(index):06d}"

    def sample(self, index: int) -> tuple[LabelMap, np.ndarray]:
        """Render sample ``index``.

        Returns:
            ``(label_map, photo)``: the :class:`~sisgen.labelmap.LabelMap` (uint8 semantic,
            int32 instance, meta with ``id``, ``source``, ``size``, ``seed``) and the
            ``H×W×3`` uint8 RGB photo, whose class regions are exactly the label's.
        """
        semantic, instance, photo = render(self.seed, self.split, int(index), self.size)
        meta = {"id": self.sample_id(index), "source": "toycity", "size": self.size,
                "split": self.split, "seed": self.seed, "index": int(index)}
        return LabelMap(semantic, instance, meta), photo
