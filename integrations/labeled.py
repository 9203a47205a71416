"""A map-style dataset of (photo, label) pairs from any sisgen source with photos.

:class:`LabeledDataset` reads real datasets (``toycity``, ``cityscapes``, ``ade20k``, ...)
and datasets that ``sisgen generate`` wrote with the ``folder`` writer, opened as a
``folder`` source -- a curated one keeps its ignore pixels (255), so a segmentation loss
with ``ignore_index=255`` leaves them out. Items have the form of
:class:`~sisgen.integrations.SynthesisDataset` items with ``to_tensor=True``::

    {"image": float32 [3, H, W] in [0, 1], "label": int64 [H, W] (255 = ignore), "name": str}

so real, generated-on-the-fly and generated-on-disk samples mix freely, e.g.
``MixedDataset(real=LabeledDataset(r), synthetic=LabeledDataset(s), ratio=0.5)``.

Resizing: labels with :func:`sisgen.labelmap.resize_nearest` (the project's one label
resize), photos with :func:`~sisgen.integrations.augment.resize_image` (area when
shrinking, bilinear otherwise). A photo whose size differs from its label map's is resized
to it when the aspect ratios agree (within 1 % or a pixel), and refused otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from sisgen.errors import SisgenInputError
from sisgen.labelmap import IGNORE_ID, resize_nearest
from sisgen.sources import Source
from sisgen.vocab import ClassInfo, Vocabulary

from .augment import resize_image
from .dataset import image_to_tensor

__all__ = ["LabeledDataset", "train_id_vocabulary"]

_ASPECT_TOLERANCE = 0.01


def train_id_vocabulary(vocabulary: Vocabulary) -> Vocabulary:
    """The train-id space of ``vocabulary`` as a vocabulary of its own.

    Train id ``t`` takes the name and colour of the lowest class id mapped to it (Cityscapes:
    the 19 trainIds, named like ``cityscapes_trainid``).

    Raises:
        SisgenInputError: The vocabulary defines no train ids.
    """
    classes: dict[int, ClassInfo] = {}
    for c in vocabulary.classes:
        if c.train_id is not None and c.train_id != IGNORE_ID and c.train_id not in classes:
            classes[c.train_id] = ClassInfo(c.train_id, c.name, c.color, c.is_thing)
    if not classes:
        raise SisgenInputError(f"vocabulary {vocabulary.name!r} has no train ids "
                               "(train_ids=True needs them)")
    return Vocabulary(f"{vocabulary.name}_trainid", list(classes.values()))


class LabeledDataset(Dataset):
    """(photo, label) pairs of a source, as tensors (module docstring).

    Args:
        source: Any :class:`~sisgen.sources.Source` whose samples have photos.
        size: ``(H, W)`` every item is resized to; ``None`` keeps each map's size.
        train_ids: Map labels through the vocabulary's train-id table (then
            :attr:`vocabulary` is the train-id space, see :func:`train_id_vocabulary`).
        hflip: Mirror items horizontally with probability 1/2, drawn from
            ``(seed, epoch, index)`` alone (see :meth:`set_epoch`).
        seed: Seed of the flips.
        ignore_classes: Classes (ids or names of the source's vocabulary) whose pixels are
            written as ignore (255): e.g. the classes a generator renders too poorly to
            learn from (:func:`sisgen.training.segmenter.class_transfer`).

    Attributes:
        vocabulary: The id space of the items' labels.

    Raises:
        SisgenInputError: An empty source, one whose first sample has no photo, or an
            ignored class the vocabulary does not have.
    """

    def __init__(self, source: Source, *, size: tuple[int, int] | None = None,
                 train_ids: bool = False, hflip: bool = False, seed: int = 0,
                 ignore_classes: Iterable[int | str] = ()):
        self.source = source
        self.size = None if size is None else (int(size[0]), int(size[1]))
        if self.size is not None and min(self.size) < 1:
            raise ValueError(f"size must be positive, got {size}")
        self.hflip = bool(hflip)
        self.seed = int(seed)
        self.epoch = 0
        self.ignore_id = source.vocabulary.ignore_id
        self.train_id_lut: np.ndarray | None = None
        self.vocabulary: Vocabulary = source.vocabulary
        self.ignore_classes = sorted({source.vocabulary.resolve(c) for c in ignore_classes})
        if train_ids:
            self.vocabulary = train_id_vocabulary(source.vocabulary)
            self.train_id_lut = source.vocabulary.train_id_table()
        if len(source) == 0:
            raise SisgenInputError(f"the {source.kind} source has no samples",
                                   getattr(source, "root", None))
        if source.photo(0) is None:
            lm = source.load(0)
            raise SisgenInputError(
                f"the {source.kind} source has no photo for sample {lm.id!r}; a LabeledDataset "
                "needs (photo, label) pairs (a folder dataset needs images/ beside labels/)",
                lm.meta.get("file"))

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose flips :meth:`__getitem__` returns."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.source)

    def pair(self, index: int) -> tuple[np.ndarray, np.ndarray, str]:
        """Sample ``index`` as ``(photo H×W×3 uint8, label H×W int64, name)``, resized.

        Raises:
            SisgenInputError: The sample has no photo, or one of another aspect ratio.
        """
        lm = self.source.load(index)
        photo = self.source.photo(index)
        where = lm.meta.get("file")
        if photo is None:
            raise SisgenInputError(f"sample {lm.id!r} has no photo", where)
        photo = np.asarray(photo)
        if photo.ndim != 3 or photo.shape[2] != 3 or photo.dtype != np.uint8:
            raise SisgenInputError(f"photo of sample {lm.id!r} is not H×W×3 uint8 "
                                   f"({photo.dtype} {photo.shape})", where)
        (lh, lw), (ph, pw) = lm.shape, photo.shape[:2]
        if abs(ph * lw / pw - lh) > max(1.0, _ASPECT_TOLERANCE * lh):
            raise SisgenInputError(f"photo of sample {lm.id!r} is {ph}x{pw}, its label map "
                                   f"{lh}x{lw}: the aspect ratios differ", where)
        size = self.size or lm.shape
        label = lm.semantic if size == lm.shape else resize_nearest(lm.semantic, size)
        label = label.astype(np.int64)
        if self.ignore_id != IGNORE_ID:
            label[label == self.ignore_id] = IGNORE_ID
        if self.ignore_classes:
            label[np.isin(label, self.ignore_classes)] = IGNORE_ID
        if self.train_id_lut is not None:
            label = self.train_id_lut[np.clip(label, 0, 255)].astype(np.int64)
        return resize_image(photo, size), label, lm.id

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"labeled dataset has {n} items, index {index}")
        index = int(index) % n
        photo, label, name = self.pair(index)
        if self.hflip:
            rng = np.random.default_rng([self.seed % 2**63, self.epoch % 2**63, index, 0xF11])
            if rng.random() < 0.5:
                photo, label = photo[:, ::-1], label[:, ::-1]
        return {"image": image_to_tensor(photo),
                "label": torch.from_numpy(np.ascontiguousarray(label)), "name": name}

    def __repr__(self) -> str:
        size = "native" if self.size is None else f"{self.size[0]}x{self.size[1]}"
        return f"<LabeledDataset {self.source.kind} n={len(self)} size={size}>"
