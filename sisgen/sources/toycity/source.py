"""The ``toycity`` source: the built-in procedural street scenes as a label-map source."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ...labelmap import LabelMap
from ..base import Source, register_source
from .render import Scene, ToyCity


@register_source("toycity")
class ToyCitySource(Source):
    """ToyCity label maps with their paired photos (see :mod:`sisgen.sources.toycity`).

    Samples are rendered on demand and are a pure function of ``(seed, split, index,
    size)``. ``load`` draws only the label maps; the photo is painted when ``photo`` asks
    for it. The last few drawn scenes are kept so that ``load(i)`` followed by ``photo(i)``
    draws once.

    Args:
        root: Ignored (ToyCity needs no files); accepted for the common ``open`` signature.
        split: Split name; each split is its own seed stream, so ``train`` and ``val`` differ.
        size: ``(H, W)`` of every sample.
        length: Number of samples.
        seed: Dataset seed.
    """

    kind = "toycity"

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 size: tuple[int, int] = (128, 256), length: int = 1000, seed: int = 0) -> None:
        if length < 0:
            raise ValueError(f"toycity length must be >= 0, got {length}")
        self.root = root
        self.split = str(split)
        self.length = int(length)
        self.city = ToyCity(size, seed=seed, split=self.split)
        self.vocabulary = self.city.vocabulary
        self._cache: dict[int, Scene] = {}

    @staticmethod
    def run_defaults(size: tuple[int, int], seed: int, evaluation: bool = False
                     ) -> dict[str, Any]:
        """Arguments a training run fills in when its source settings leave them out.

        ToyCity renders at any resolution, so a run renders it at its own ``size``: for
        training with the run's ``seed``; for evaluation from the ``val`` split (with the
        source's default seed), scenes the generator never trained on.

        Args:
            size: The run's ``(H, W)``.
            seed: The run's seed.
            evaluation: Defaults of the evaluation source, not the training source.
        """
        if evaluation:
            return {"size": size, "split": "val"}
        return {"size": size, "seed": seed}

    @property
    def size(self) -> tuple[int, int]:
        """``(H, W)`` of the samples."""
        return self.city.size

    def keys(self) -> list[str]:
        """The sample ids ``toycity_{split}_{index:06d}``."""
        return [self.city.sample_id(i) for i in range(self.length)]

    def __len__(self) -> int:
        return self.length

    def _scene(self, index: int) -> Scene:
        if not 0 <= index < self.length:
            raise IndexError(f"toycity source has {self.length} samples, index {index}")
        hit = self._cache.get(index)
        if hit is None:
            hit = self.city.scene(index)
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
            self._cache[index] = hit
        return hit

    def load(self, index: int) -> LabelMap:
        """The label map of sample ``index`` (a fresh copy)."""
        return self.city.label_map(self._scene(int(index))).copy()

    def photo(self, index: int) -> np.ndarray:
        """The ``H×W×3`` uint8 RGB photo of sample ``index``."""
        return self._scene(int(index)).photo().copy()
