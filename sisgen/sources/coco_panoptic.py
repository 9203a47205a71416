"""COCO panoptic annotations (PNG + JSON) as ``coco_panoptic`` label maps.

Layout (the official one)::

    root/annotations/panoptic_{split}.json      images, annotations (segments_info), categories
    root/annotations/panoptic_{split}/*.png     RGB, segment id = R + 256*G + 256**2*B
    root/{split}/<file_name>                    optional photos

``split`` is e.g. ``val2017``; ``train`` / ``val`` also work when only the ``2017`` files
exist.

How a sample is decoded:

* ``semantic`` is in the ``coco_panoptic`` vocabulary, whose ids are contiguous
  (``0..132`` in COCO category-id order; see
  :data:`sisgen.vocab.COCO_PANOPTIC_CATEGORY_IDS`). Segment id 0 (void) becomes 255; a
  segment whose category is not one of the 133 panoptic categories is an error.
* ``instance`` numbers the non-crowd thing segments ``1..N`` in ``segments_info`` order.
  Stuff, void and crowd (``iscrowd = 1``) thing segments get 0, as Cityscapes' group
  regions do: a crowd is a region of the class, not one object.
* ``meta["segments"]`` lists ``{"segment_id", "category_id", "class_id", "iscrowd",
  "instance_id"}`` for every segment of ``segments_info``.

Bad input raises :class:`~sisgen.errors.SisgenInputError` naming the file: a malformed
JSON at construction; a missing or unreadable PNG, a PNG whose size differs from the
image record, or a PNG holding segment ids that ``segments_info`` does not list, at
:meth:`CocoPanopticSource.load` of that sample (so a long run can skip it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import SisgenInputError
from ..io import read_json, read_rgb
from ..labelmap import IGNORE_ID, LabelMap
from ..vocab import COCO_PANOPTIC_CATEGORY_IDS, get_vocabulary
from .base import Source, register_source
from .folder import require_root, unique_keys

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

#: COCO panoptic category id -> ``coco_panoptic`` class id.
CATEGORY_TO_CLASS: dict[int, int] = {c: i for i, c in enumerate(COCO_PANOPTIC_CATEGORY_IDS)}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def rgb_to_segment_ids(rgb: np.ndarray) -> np.ndarray:
    """Decode a panoptic PNG's ``H×W×3`` RGB array into int64 segment ids."""
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def segment_ids_to_rgb(ids: np.ndarray) -> np.ndarray:
    """Encode segment ids (``0 .. 256**3 - 1``) as the ``H×W×3`` uint8 RGB of a panoptic PNG."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.stack([ids % 256, (ids // 256) % 256, (ids // 65536) % 256], axis=-1).astype(
        np.uint8
    )


def read_panoptic_png(path: str | os.PathLike) -> np.ndarray:
    """Read a panoptic PNG into an ``H×W`` int64 array of segment ids.

    Raises:
        SisgenInputError: Missing, not a PNG, undecodable, or not a 3-channel image.

    """
    path = Path(path)
    if not path.is_file():
        raise SisgenInputError("panoptic PNG not found", path)
    with open(path, "rb") as f:
        if f.read(8) != _PNG_MAGIC:
            raise SisgenInputError("not a PNG file (panoptic maps must be lossless RGB PNGs)",
                                   path)
    arr = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise SisgenInputError("corrupt or truncated PNG (could not be decoded)", path)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4) or arr.dtype != np.uint8:
        raise SisgenInputError(
            f"panoptic PNG must be 8-bit RGB, got shape {arr.shape} {arr.dtype}", path
        )
    return rgb_to_segment_ids(cv2.cvtColor(arr[..., :3], cv2.COLOR_BGR2RGB))


@register_source("coco_panoptic")
class CocoPanopticSource(Source):
    """COCO panoptic segmentation of one split (see the module docstring).

    Samples follow the JSON's ``annotations``, sorted by image id; sample ids are the image
    file stems (``000000000139``). ``meta`` has ``image_id``, ``file_name`` (the photo),
    ``file`` (the panoptic PNG), ``annotation_file`` (the JSON) and ``segments``.

    Args:
        root: The dataset root (holding ``annotations/``).
        split: ``train2017``, ``val2017``, ... (``train`` / ``val`` also work).
        json_file: Use this JSON instead of ``annotations/panoptic_{split}.json``.
        png_dir: Use this PNG folder instead of ``annotations/panoptic_{split}/``.

    Raises:
        SisgenInputError: Missing root or JSON, or a malformed JSON.

    """

    kind = "coco_panoptic"

    def __init__(self, root: str | os.PathLike | None, split: str = "val2017", *,
                 json_file: str | os.PathLike | None = None,
                 png_dir: str | os.PathLike | None = None):
        self.root = require_root(root, self.kind)
        self.vocabulary = get_vocabulary("coco_panoptic")
        ann_dir = self.root / "annotations"
        if (json_file is None and not (ann_dir / f"panoptic_{split}.json").exists()
                and (ann_dir / f"panoptic_{split}2017.json").exists()):
            split = f"{split}2017"
        self.split = split
        self.json_path = Path(json_file) if json_file else ann_dir / f"panoptic_{split}.json"
        self.png_dir = Path(png_dir) if png_dir else ann_dir / f"panoptic_{split}"
        if not self.json_path.is_file():
            raise SisgenInputError(
                f"COCO panoptic JSON not found (expected annotations/panoptic_{split}.json)",
                self.json_path,
            )
        self._records = self._check(read_json(self.json_path))
        self._keys = unique_keys(
            [Path(r["image"]["file_name"]).stem for r in self._records],
            [str(r["image"]["id"]) for r in self._records],
        )

    def _bad(self, problem: str) -> SisgenInputError:
        return SisgenInputError(f"malformed COCO panoptic JSON: {problem}", self.json_path)

    def _check(self, data: Any) -> list[dict]:
        """Validate the JSON structure; return one record per annotation, by image id."""
        if not isinstance(data, dict):
            raise self._bad("top level is not an object")
        for key in ("images", "annotations"):
            if not isinstance(data.get(key), list):
                raise self._bad(f"no {key!r} list")
        images: dict[int, dict] = {}
        for img in data["images"]:
            if not (isinstance(img, dict) and _is_int(img.get("id"))
                    and isinstance(img.get("file_name"), str)
                    and _is_int(img.get("width")) and _is_int(img.get("height"))
                    and img["width"] > 0 and img["height"] > 0):
                raise self._bad("an image record needs integer 'id', positive 'width' and "
                                f"'height' and a 'file_name' (got {str(img)[:120]})")
            images[img["id"]] = img
        records: dict[int, dict] = {}
        for ann in data["annotations"]:
            if not (isinstance(ann, dict) and _is_int(ann.get("image_id"))
                    and isinstance(ann.get("file_name"), str)
                    and isinstance(ann.get("segments_info"), list)):
                raise self._bad("an annotation needs integer 'image_id', a 'file_name' and a "
                                f"'segments_info' list (got {str(ann)[:120]})")
            iid = ann["image_id"]
            if iid not in images:
                raise self._bad(f"annotation {ann['file_name']!r} points at image {iid}, "
                                "which is not in 'images'")
            if iid in records:
                raise self._bad(f"image {iid} has two annotations")
            seen: set[int] = set()
            for seg in ann["segments_info"]:
                if not (isinstance(seg, dict) and _is_int(seg.get("id"))
                        and _is_int(seg.get("category_id"))):
                    raise self._bad(f"image {iid}: a segment needs integer 'id' and "
                                    f"'category_id' (got {str(seg)[:120]})")
                if not 0 < seg["id"] < 256**3:
                    raise self._bad(f"image {iid}: segment id {seg['id']} outside 1..256**3-1")
                if seg["id"] in seen:
                    raise self._bad(f"image {iid}: duplicate segment id {seg['id']}")
                seen.add(seg["id"])
            records[iid] = {"image": images[iid], "ann": ann}
        if not records:
            raise self._bad("no annotations")
        return [records[i] for i in sorted(records)]

    def keys(self) -> list[str]:
        """Image file stems, in image-id order."""
        return list(self._keys)

    def png_path(self, index: int) -> Path:
        """The panoptic PNG of sample ``index`` (it may not exist)."""
        return self.png_dir / self._records[index]["ann"]["file_name"]

    def load(self, index: int) -> LabelMap:
        """Decode sample ``index``; raises ``SisgenInputError`` for a bad PNG or segment."""
        rec = self._records[index]
        img, ann = rec["image"], rec["ann"]
        path = self.png_path(index)
        ids = read_panoptic_png(path)
        h, w = img["height"], img["width"]
        if ids.shape != (h, w):
            raise SisgenInputError(
                f"PNG is {ids.shape[1]}x{ids.shape[0]} but image {img['id']} is {w}x{h}", path
            )
        uniq, inverse = np.unique(ids, return_inverse=True)
        inverse = inverse.reshape(ids.shape)
        cls_of: dict[int, int] = {0: IGNORE_ID}
        inst_of: dict[int, int] = {0: 0}
        segments = []
        n = 0
        for seg in ann["segments_info"]:
            cid = seg["category_id"]
            if cid not in CATEGORY_TO_CLASS:
                raise SisgenInputError(
                    f"image {img['id']}: segment {seg['id']}: category_id {cid} is not a COCO "
                    "panoptic category",
                    self.json_path,
                )
            cls = CATEGORY_TO_CLASS[cid]
            crowd = int(bool(seg.get("iscrowd", 0)))
            inst = 0
            if self.vocabulary[cls].is_thing and not crowd:
                n += 1
                inst = n
            cls_of[seg["id"]] = cls
            inst_of[seg["id"]] = inst
            segments.append({"segment_id": seg["id"], "category_id": cid, "class_id": cls,
                             "iscrowd": crowd, "instance_id": inst})
        unknown = [int(u) for u in uniq if int(u) not in cls_of]
        if unknown:
            shown = ", ".join(map(str, unknown[:10])) + (" ..." if len(unknown) > 10 else "")
            raise SisgenInputError(
                f"segment ids {shown} are not in the segments_info of image {img['id']} in "
                f"{self.json_path.name}",
                path,
            )
        semantic = np.array([cls_of[int(u)] for u in uniq], dtype=np.uint8)[inverse]
        instance = np.array([inst_of[int(u)] for u in uniq], dtype=np.int32)[inverse]
        meta: dict = {
            "id": self._keys[index],
            "source": self.kind,
            "file": str(path),
            "annotation_file": str(self.json_path),
            "image_id": img["id"],
            "file_name": img["file_name"],
            "size": (h, w),
            "split": self.split,
            "segments": segments,
        }
        return LabelMap(semantic, instance, meta)

    def photo(self, index: int) -> np.ndarray | None:
        """Return the photo ``root/{split}/<file_name>``, or ``None`` when it is not there."""
        p = self.root / self.split / self._records[index]["image"]["file_name"]
        return read_rgb(p) if p.is_file() else None
