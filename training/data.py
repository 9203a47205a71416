"""Paired (label map, photo) datasets for training, from any sisgen source."""

from __future__ import annotations

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from sisgen.errors import SisgenInputError
from sisgen.labelmap import LabelMap, instance_edges
from sisgen.sources import Source


def to_training_tensors(lm: LabelMap, photo: np.ndarray, size: tuple[int, int]
                        ) -> dict[str, torch.Tensor]:
    """Resize a pair to ``size`` (labels nearest, photo area) and convert to tensors.

    Returns:
        ``labels`` int64 [H,W], ``edges`` float [1,H,W], ``image`` float [3,H,W] in [-1, 1].
    """
    h, w = size
    if lm.shape != (h, w):
        lm = lm.resized((h, w))
    if photo.shape[:2] != (h, w):
        photo = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
    inst = lm.instance if lm.instance is not None else lm.semantic
    return {
        "labels": torch.from_numpy(lm.semantic.astype(np.int64)),
        "edges": torch.from_numpy(instance_edges(inst))[None],
        "image": torch.from_numpy(photo).permute(2, 0, 1).float().div(127.5).sub(1.0),
    }


class PairedDataset(Dataset):
    """(labels, edges, image) training triples from a source with photos.

    Args:
        source: Any :class:`~sisgen.sources.Source` whose ``photo(i)`` returns the photo.
        size: Training ``(H, W)``.
        flip: Random horizontal flips (applied consistently to labels and photo).
        cache: Decode every sample once and keep the tensors in memory (small datasets).
    """

    def __init__(self, source: Source, size: tuple[int, int], flip: bool = True,
                 cache: bool = False):
        self.source, self.size, self.flip = source, tuple(size), flip
        self._cache: list[dict[str, torch.Tensor]] | None = None
        if cache:
            self._cache = [self._decode(i) for i in range(len(source))]

    def _decode(self, index: int) -> dict[str, torch.Tensor]:
        lm = self.source.load(index)
        photo = self.source.photo(index)
        if photo is None:
            raise SisgenInputError(f"sample {lm.id!r} has no paired photo; training needs one",
                                   lm.meta.get("file"))
        self.source.vocabulary.validate(lm.semantic, lm.meta.get("file"))
        return to_training_tensors(lm, photo, self.size)

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = self._cache[index] if self._cache is not None else self._decode(index)
        if self.flip and torch.rand(()) < 0.5:
            item = {k: v.flip(-1) for k, v in item.items()}
        return item
