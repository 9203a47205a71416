"""Rendering one ToyCity sample, and :class:`ToyCity`, the dataset of rendered samples.

A sample is drawn in two steps: :func:`draw` lays out the street, places and draws the
objects and reads off the label map and the instance map (:class:`Scene`); painting the
photo (:meth:`Scene.photo`) is the more expensive half and is done only when a photo is
asked for, so a label-map-only consumer (``sisgen generate``) never pays for it.

Determinism. The scene (layout, objects, colours) is drawn from a stream seeded with a
hash of ``(seed, split, index)``; the pixel noise from one seeded with ``(seed, split,
index, H, W)``. So a sample is a pure function of those arguments, independent of call
order (and of whether its photo was painted), and the same index at another resolution
shows the same street.
"""

from __future__ import annotations

import numpy as np

from ...labelmap import LabelMap
from ...vocab import get_vocabulary
from .layout import FacadeColumns, Street
from .objects import draw_objects, place_objects
from .painting import label_maps, paint, shadow_mask
from .primitives import Canvas
from .rand import Rand, seed_int


class Scene:
    """One drawn ToyCity sample: its label maps now, its photo when asked for.

    Attributes:
        index: The sample index.
        semantic: ``H×W`` uint8 class ids.
        instance: ``H×W`` int32 Cityscapes-style instance ids (``class*1000 + k`` on thing
            pixels, 0 elsewhere).
    """

    def __init__(self, index: int, street: Street, canvas: Canvas, columns: FacadeColumns,
                 shadows: list[np.ndarray], pixel_seed: int) -> None:
        self.index = int(index)
        self._street, self._canvas, self._columns = street, canvas, columns
        self._shadows, self._pixel_seed = shadows, pixel_seed
        self.semantic, self.instance = label_maps(canvas)
        self._photo: np.ndarray | None = None

    def photo(self) -> np.ndarray:
        """The ``H×W×3`` uint8 RGB photo (painted on the first call, then kept)."""
        if self._photo is None:
            h, w = self.semantic.shape
            self._photo = paint(self._street, self._canvas, self._columns, self.semantic,
                                shadow_mask(self._shadows, h, w),
                                np.random.default_rng(self._pixel_seed))
        return self._photo


def draw(seed: int, split: str, index: int, size: tuple[int, int]) -> Scene:
    """Draw one ToyCity sample (its label maps; the photo is painted on demand).

    Args:
        seed: Dataset seed.
        split: Split name; each split is its own seed stream.
        index: Sample index.
        size: ``(H, W)`` of the output.
    """
    h, w = int(size[0]), int(size[1])
    if h < 8 or w < 8:
        raise ValueError(f"ToyCity size must be at least 8x8, got {h}x{w}")
    rng = Rand(seed_int("toycity", seed, split, index))
    street = Street(rng, h, w)
    objects, shadows = place_objects(street, rng)
    prim, columns = street.rasterise()
    canvas = Canvas(street, prim)
    draw_objects(canvas, objects)
    return Scene(index, street, canvas, columns, shadows,
                 seed_int("toycity-pixels", seed, split, index, h, w))


def render(seed: int, split: str, index: int, size: tuple[int, int]
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render one ToyCity sample, photo included (:func:`draw` then :meth:`Scene.photo`).

    Returns:
        ``(semantic, instance, photo)``: ``H×W`` uint8 class ids, ``H×W`` int32
        Cityscapes-style instance ids and the ``H×W×3`` uint8 RGB photo.
    """
    scene = draw(seed, split, index, size)
    return scene.semantic, scene.instance, scene.photo()


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

    def scene(self, index: int) -> Scene:
        """Draw sample ``index``; its photo is painted when :meth:`Scene.photo` is called."""
        return draw(self.seed, self.split, int(index), self.size)

    def label_map(self, scene: Scene) -> LabelMap:
        """The :class:`~sisgen.labelmap.LabelMap` of a scene drawn by :meth:`scene`.

        It holds the scene's arrays, not copies; its meta has ``id``, ``source``, ``size``,
        ``split``, ``seed`` and ``index``.
        """
        meta = {"id": self.sample_id(scene.index), "source": "toycity", "size": self.size,
                "split": self.split, "seed": self.seed, "index": scene.index}
        return LabelMap(scene.semantic, scene.instance, meta)

    def sample(self, index: int) -> tuple[LabelMap, np.ndarray]:
        """Render sample ``index``.

        Returns:
            ``(label_map, photo)``: the :class:`~sisgen.labelmap.LabelMap` (uint8 semantic,
            int32 instance, meta with ``id``, ``source``, ``size``, ``seed``) and the
            ``H×W×3`` uint8 RGB photo, whose class regions are exactly the label's.
        """
        scene = self.scene(index)
        return self.label_map(scene), scene.photo()
