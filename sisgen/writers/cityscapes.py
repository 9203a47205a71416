"""The Cityscapes layout: ``leftImg8bit`` images and ``gtFine`` label, instance, colour PNGs.

Tools written for Cityscapes (its scripts, mmsegmentation, detectron2) read the output
unchanged::

    root/leftImg8bit/{split}/{city}/{name}_leftImg8bit.jpg    (or .png, image_format=png)
    root/gtFine/{split}/{city}/{name}_gtFine_labelIds.png      uint8 class ids
    root/gtFine/{split}/{city}/{name}_gtFine_instanceIds.png   uint16, see below
    root/gtFine/{split}/{city}/{name}_gtFine_color.png         vocabulary colours

``instanceIds`` follows the Cityscapes convention: a pixel of a thing class that has an
instance stores ``class * 1000 + k``; every other pixel (stuff, ignore, thing pixels
without an instance, i.e. crowd groups) stores its class id.
"""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np

from ..errors import SisgenInputError
from ..io import atomic_write_bytes, encode_palette_png, write_image
from ..labelmap import LabelMap
from ..vocab import Vocabulary
from .base import (
    SampleImage,
    Writer,
    Written,
    check_image_format,
    class_ids_u8,
    register_writer,
    unique_runs,
    write_label_png,
    write_photo,
)


def cityscapes_instance_ids(
    semantic: np.ndarray, instance: np.ndarray | None, thing_ids: list[int] | np.ndarray
) -> np.ndarray:
    """Encode a label map as a Cityscapes ``instanceIds`` array.

    Each (class, instance id) pair of thing pixels with a nonzero instance becomes one
    Cityscapes instance. An incoming id that already is ``class * 1000 + k`` for the
    pixels' class is kept; the others get the smallest free ``k`` of their class, in order of
    first appearance (raster order), so ``k`` counts 0, 1, ... when nothing is kept.

    Args:
        semantic: ``H×W`` class ids.
        instance: ``H×W`` instance ids (0 = none) or ``None``.
        thing_ids: The thing class ids.

    Returns:
        An ``H×W`` uint16 array.

    Raises:
        SisgenInputError: A class has more than 1000 instances, class 0 has instances, or an
            id exceeds 65535 (a thing class id above 65).

    """
    sem = np.asarray(semantic)
    limit = np.iinfo(np.uint16).max
    if sem.dtype != np.uint8 and sem.size and (sem.min() < 0 or sem.max() > limit):
        raise SisgenInputError(_TOO_LARGE)
    out = sem.astype(np.uint16)
    if instance is not None:
        thing = np.zeros(256, dtype=np.uint8)
        thing[np.asarray(thing_ids, dtype=np.int64)] = 1
        sel = (instance != 0) & cv2.LUT(class_ids_u8(sem), thing).view(bool)
        if sel.any():
            flat_idx = np.flatnonzero(sel)
            cls = sem.ravel()[flat_idx].astype(np.int64)
            inst = instance.ravel()[flat_idx].astype(np.int64)
            # (class, instance) pairs as one int64 key, sorted like the pairs: a 1-D sort
            # of one key per run (unique_runs), not a row-wise unique (instance ids are
            # int32, classes below 256)
            key = (cls << 32) | (inst + (1 << 31))
            ukey, inverse, first = unique_runs(key)
            uniq = np.stack([ukey >> 32, (ukey & 0xFFFFFFFF) - (1 << 31)], axis=1)
            code = _instance_codes(uniq, first)
            if code.max() > limit:
                raise SisgenInputError(_TOO_LARGE)
            out.ravel()[flat_idx] = code[inverse]
    return out


_TOO_LARGE = ("instance ids do not fit Cityscapes' uint16 instanceIds (class * 1000 + k must "
              "be at most 65535, so thing class ids at most 65)")


def _instance_codes(uniq: np.ndarray, first: np.ndarray) -> np.ndarray:
    """The ``class * 1000 + k`` code of each distinct ``(class, instance id)`` pair.

    Raises:
        SisgenInputError: Class 0 has instances, or a class has more than 1000.
    """
    if (uniq[:, 0] == 0).any():
        raise SisgenInputError(
            "class 0 is a thing class with instances; Cityscapes instanceIds cannot "
            "encode them (0 * 1000 + k reads as class k)"
        )
    code = np.empty(len(uniq), dtype=np.int64)
    keep = (uniq[:, 1] // 1000 == uniq[:, 0]) & (uniq[:, 1] >= uniq[:, 0] * 1000)
    used: dict[int, set[int]] = {}
    for g in np.flatnonzero(keep):
        c, i = int(uniq[g, 0]), int(uniq[g, 1])
        code[g] = i
        used.setdefault(c, set()).add(i % 1000)
    next_k: dict[int, int] = {}
    for g in sorted(np.flatnonzero(~keep), key=lambda g: first[g]):
        c = int(uniq[g, 0])
        taken = used.setdefault(c, set())
        k = next_k.get(c, 0)
        while k in taken:
            k += 1
        if k >= 1000:
            raise SisgenInputError(
                f"class {c} has more than 1000 instances; Cityscapes instanceIds "
                "cannot encode them"
            )
        taken.add(k)
        next_k[c] = k + 1
        code[g] = c * 1000 + k
    return code


@register_writer("cityscapes")
class CityscapesWriter(Writer):
    """Write samples in the Cityscapes ``leftImg8bit`` / ``gtFine`` layout.

    Args:
        root: The dataset root.
        vocabulary: The id space of the label maps (usually ``cityscapes``).
        split: The split folder (``train``, ``val``, ...).
        city: The city folder the samples go in.
        image_format: ``jpg`` (default: a tenth of the encoding time and size) or ``png``
            (lossless, as Cityscapes ships its photos; tools then read ``_leftImg8bit.png``).
        jpeg_quality: JPEG quality when ``image_format="jpg"``.

    """

    def __init__(
        self,
        root: str | os.PathLike,
        vocabulary: Vocabulary,
        split: str = "train",
        city: str = "sisgen",
        image_format: str = "jpg",
        jpeg_quality: int = 95,
        **options: Any,
    ):
        super().__init__(root, vocabulary, **options)
        fmt = check_image_format(image_format)
        self.split = split
        self.city = city
        self.image_format = fmt
        self.jpeg_quality = int(jpeg_quality)
        self.image_dir = self.root / "leftImg8bit" / split / city
        self.gt_dir = self.root / "gtFine" / split / city
        self._thing_ids = list(vocabulary.thing_ids)
        bad = [vocabulary[c].name for c in self._thing_ids if c == 0 or c > 64]
        if bad:
            # instanceIds are uint16 class*1000+k: class 0 would read as stuff, classes above
            # 64 overflow; fail now rather than on the first sample with such an instance
            raise SisgenInputError(
                f"the Cityscapes layout cannot encode instances of the {vocabulary.name!r} "
                f"thing classes {', '.join(bad[:5])}{' ...' if len(bad) > 5 else ''} (instanceIds "
                "are uint16 class*1000+k, so thing ids must be 1..64); use the coco, folder or "
                "mmseg writer, or remap the labels first",
                self.root,
            )

    def write_files(self, name: str, image: np.ndarray | SampleImage, labelmap: LabelMap
                    ) -> Written:
        """Write the image and its three ``gtFine`` PNGs.

        Returns:
            Paths ``{"image", "label", "instance", "color"}`` relative to the root.

        """
        stem = self._check(name, image, labelmap)
        semantic = labelmap.semantic
        paths = {
            "label": self.gt_dir / f"{stem}_gtFine_labelIds.png",
            "instance": self.gt_dir / f"{stem}_gtFine_instanceIds.png",
            "color": self.gt_dir / f"{stem}_gtFine_color.png",
        }
        instance_ids = cityscapes_instance_ids(semantic, labelmap.instance, self._thing_ids)
        write_label_png(paths["label"], semantic, image)
        write_image(paths["instance"], instance_ids)
        ids = semantic if semantic.dtype == np.uint8 else np.clip(semantic, 0, 255).astype(
            np.uint8)  # as Vocabulary.colorize draws other dtypes
        atomic_write_bytes(paths["color"], encode_palette_png(ids, self.vocabulary.palette()))
        image_path = write_photo(self.image_dir, stem, image, self.image_format,
                                 self.jpeg_quality, suffix="_leftImg8bit")
        paths = {"image": image_path, **paths}
        return Written(name, {role: self._rel(p) for role, p in paths.items()})
