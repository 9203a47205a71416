"""The Ultralytics YOLO segmentation layout.

::

    root/images/{split}/{name}.jpg | .png
    root/labels/{split}/{name}.txt        one line per object part:
                                          ``class_index x1 y1 x2 y2 ...`` in [0, 1]
    root/data.yaml                        path, train / val (/ test), nc, names

Objects are the thing instances: each (instance id, class) pair of thing pixels with a
nonzero instance id. ``class_index`` is the class's position among the vocabulary's thing
classes (``0..K-1`` in id order), so ``names`` is contiguous as Ultralytics requires. With
``include_stuff=True`` stuff classes are written too, one line per connected region, and
``class_index`` is the position among *all* the vocabulary's classes.

Polygons come from ``cv2.findContours`` on each 8-connected part of the mask (its largest
external contour, vertices at pixel centres, ``CHAIN_APPROX_SIMPLE``), normalised by the
image width and height; an instance in several parts gives one line per part. Filling the
polygons with ``cv2.fillPoly`` (as Ultralytics rasterises them) gives back the part
without its holes. A part too thin for a polygon (a single pixel, a one-pixel line) is
written as the rectangle around it. Thing pixels without an instance id (crowd regions)
and ignored pixels are not written, as Ultralytics' own COCO converter drops crowd
annotations. An image without objects gets an empty label file (a background image).

``data.yaml`` is rebuilt at :meth:`YoloWriter.close` from the split folders on disk, so a
resumed run keeps the earlier samples: split folders named ``train`` / ``val`` / ``test``
(or containing those words, e.g. ``train2017``) fill those keys; a dataset without a
validation split points ``val`` at the training images (Ultralytics needs a ``val`` key).
Opening a writer on a root whose ``data.yaml`` has other ``names`` raises.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml

from ..errors import SisgenInputError
from ..io import write_text
from ..labelmap import LabelMap
from ..vocab import Vocabulary
from .base import (
    SampleImage,
    Writer,
    Written,
    check_image_format,
    instance_masks,
    pixel_kinds,
    register_writer,
    write_photo,
)


def part_polygons(mask: np.ndarray) -> list[np.ndarray]:
    """Trace the parts of a binary mask as pixel-centre polygons.

    Args:
        mask: ``H×W`` boolean or 0/1 array.

    Returns:
        One ``N×2`` float array of ``(x, y)`` vertices (``N ≥ 3``) per 8-connected part,
        in pixel coordinates; a part whose contour has fewer than 3 vertices becomes its
        bounding rectangle with corners on pixel borders.

    """
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return []
    x0, y0 = int(xs.min()), int(ys.min())
    m = np.ascontiguousarray(mask[y0 : int(ys.max()) + 1, x0 : int(xs.max()) + 1],
                             dtype=np.uint8)
    n, comp, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    polys: list[np.ndarray] = []
    for k in range(1, n):
        x, y, w, h = (int(v) for v in stats[k, :4])
        part = (comp[y : y + h, x : x + w] == k).astype(np.uint8)
        contours, _ = cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        best = max(contours, key=lambda c: (cv2.contourArea(c), len(c)))
        pts = best.reshape(-1, 2).astype(np.float64) + (x, y)
        if len(pts) < 3 or cv2.contourArea(best) == 0:
            pts = np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], np.float64)
        polys.append(pts + (x0, y0))
    return polys


def yolo_lines(
    semantic: np.ndarray,
    instance: np.ndarray | None,
    vocabulary: Vocabulary,
    include_stuff: bool = False,
    decimals: int = 6,
) -> list[str]:
    """Build the YOLO-seg label lines of one label map.

    Args:
        semantic: ``H×W`` class ids.
        instance: ``H×W`` instance ids (0 = none) or ``None``.
        vocabulary: Tells things from stuff and fixes the class indices.
        include_stuff: Also write stuff regions (indices over all classes).
        decimals: Digits kept of each normalised coordinate.

    Returns:
        The lines (without newlines): instances in (instance id, class) order, each split
        into its parts, then stuff regions by class.

    """
    h, w = semantic.shape
    classes = vocabulary.classes if include_stuff else [c for c in vocabulary.classes
                                                         if c.is_thing]
    index = {c.id: i for i, c in enumerate(classes)}
    sem, thing_px, _ = pixel_kinds(semantic, vocabulary)
    scale = np.array([w, h], np.float64)

    def fmt(cls: int, pts: np.ndarray) -> str:
        xy = np.clip(pts / scale, 0.0, 1.0).ravel()
        return " ".join([str(index[cls]), *(f"{v:.{decimals}f}" for v in xy)])

    lines: list[str] = []
    for cls, mask in instance_masks(sem, instance, thing_px):
        lines += [fmt(cls, p) for p in part_polygons(mask)]
    if include_stuff:
        stuff_ids = [c.id for c in vocabulary.classes if not c.is_thing]
        for cls in np.intersect1d(np.unique(sem[~thing_px]), stuff_ids):
            lines += [fmt(int(cls), p) for p in part_polygons(sem == cls)]
    return lines


def _split_key(split: str) -> str | None:
    for key in ("train", "val", "test"):
        if key in split.lower():
            return key
    return None


@register_writer("yolo")
class YoloWriter(Writer):
    """Write samples as an Ultralytics YOLO segmentation dataset.

    Args:
        root: The dataset root.
        vocabulary: The id space of the label maps.
        split: The split folder (``train``, ``val``, ...).
        image_format: ``jpg`` (default) or ``png``.
        jpeg_quality: JPEG quality for ``jpg``.
        include_stuff: Also write stuff classes, one line per connected region, with class
            indices over all classes instead of the thing classes only.

    Raises:
        SisgenInputError: Bad option, the vocabulary has no thing classes (without
            ``include_stuff``), or ``root/data.yaml`` lists other class names.

    """

    def __init__(
        self,
        root: str | os.PathLike,
        vocabulary: Vocabulary,
        split: str = "train",
        image_format: str = "jpg",
        jpeg_quality: int = 95,
        include_stuff: bool = False,
        **options: Any,
    ):
        super().__init__(root, vocabulary, **options)
        self.split = split
        self.image_format = check_image_format(image_format)
        self.jpeg_quality = int(jpeg_quality)
        self.include_stuff = bool(include_stuff)
        classes = vocabulary.classes if self.include_stuff else [
            c for c in vocabulary.classes if c.is_thing]
        if not classes:
            raise SisgenInputError(
                f"vocabulary {vocabulary.name!r} has no thing classes to write as YOLO "
                "objects; pass include_stuff=True to write stuff regions"
            )
        self.names = {i: c.name for i, c in enumerate(classes)}
        self.image_dir = self.root / "images" / split
        self.label_dir = self.root / "labels" / split
        self.yaml_path = self.root / "data.yaml"
        self._check_existing()

    def _check_existing(self) -> None:
        if not self.yaml_path.is_file():
            return
        try:
            data = yaml.safe_load(self.yaml_path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            return  # rewritten at close
        names = data.get("names") if isinstance(data, dict) else None
        if isinstance(names, dict) and {int(k): v for k, v in names.items()} != self.names:
            raise SisgenInputError(
                "data.yaml lists other class names than this writer would (another "
                "vocabulary or include_stuff setting); write to a new root",
                self.yaml_path,
            )

    def write_files(self, name: str, image: np.ndarray | SampleImage, labelmap: LabelMap
                    ) -> Written:
        """Write the image and its label text file.

        Returns:
            Paths ``{"image", "label"}`` relative to the root.

        """
        stem = self._check(name, image, labelmap)
        lines = yolo_lines(labelmap.semantic, labelmap.instance, self.vocabulary,
                           self.include_stuff)
        label = self.label_dir / f"{stem}.txt"
        write_text(label, "".join(line + "\n" for line in lines))
        img = write_photo(self.image_dir, stem, image, self.image_format, self.jpeg_quality)
        return Written(name, {"image": self._rel(img), "label": self._rel(label)})

    def data_yaml(self) -> dict[str, Any]:
        """The ``data.yaml`` content for the splits on disk."""
        images = self.root / "images"
        splits = sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []
        data: dict[str, Any] = {"path": str(Path(self.root).resolve())}
        for split in splits:
            key = _split_key(split)
            if key is not None and key not in data:
                data[key] = f"images/{split}"
        if "train" not in data and splits:
            data["train"] = f"images/{splits[0]}"
        data.setdefault("train", f"images/{self.split}")
        data.setdefault("val", data["train"])
        data["nc"] = len(self.names)
        data["names"] = dict(self.names)
        return data

    def close(self) -> None:
        """Write ``data.yaml`` for every split on disk."""
        if self.closed:
            return
        text = yaml.safe_dump(self.data_yaml(), sort_keys=False, allow_unicode=True)
        write_text(self.yaml_path, text)
        super().close()
