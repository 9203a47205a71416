"""COCO JSON annotations (instances + stuff) rasterized into dense COCO-Stuff label maps.

Layout::

    root/annotations/instances_{split}.json   things, polygons or RLE (optional)
    root/annotations/stuff_{split}.json       COCO-Stuff stuff, RLE (optional)
    root/{split}/<file_name>                  optional photos

At least one of the two JSON files must exist. ``split`` is e.g. ``train2017``; ``train`` /
``val`` also work when only the ``2017`` files exist. The JSON files are read and checked
once, at construction; each :meth:`CocoSource.load` rasterizes one image with pycocotools.

How a map is painted (values in the ``coco_stuff`` vocabulary, ``category_id - 1``):

1. Every pixel starts as 255 (unlabeled).
2. Stuff annotations are painted in file order (COCO-Stuff stuff segments do not overlap).
   Stuff category 183 ``other`` is *not* painted: in COCO-Stuff it only marks the pixels
   that thing annotations cover, and the distributed ``stuffthingmaps`` PNGs have no class
   for it (their values are 0..181 and 255), so those pixels stay 255 unless a thing
   annotation covers them.
3. Thing annotations are painted over the stuff, **largest first** (by rasterized pixel
   area, ties in file order), so small objects lying on larger ones (a cup on a table, a
   person in front of a bus) stay visible instead of being hidden by whichever came later
   in the file. On the sample data this matches the distributed maps better than file
   order does.

Instance ids are ``1..N`` in the order of the image's annotations in the instances file
(so an id names the same annotation whatever the paint order); each thing annotation gets
an id, also crowd regions and degenerate ones that cover no pixel. ``meta["instances"]``
lists ``{"id", "annotation_id", "category_id", "class_id", "iscrowd", "area"}`` per
instance, ``area`` being the visible pixel count after painting.

Bad input: a malformed JSON (syntax, missing ``images`` / ``annotations`` / ``categories``,
an annotation pointing at a missing image, bad image records) raises
:class:`~sisgen.errors.SisgenInputError` naming the JSON file at construction. A bad
annotation (unparsable polygon or RLE, unknown category) makes only :meth:`load` of that
image fail, naming the JSON file and the annotation id, so a long run can skip it. Polygons
with fewer than three points are legal in COCO (they have zero area) and are skipped.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
from numbers import Real
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from ..errors import SisgenInputError
from ..io import read_json, read_rgb
from ..labelmap import IGNORE_ID, LabelMap
from ..vocab import get_vocabulary
from .base import Source, register_source
from .folder import require_root, unique_keys

OTHER_CATEGORY = 183  # COCO-Stuff's stuff class "other"; becomes 255 (see module docstring)
_NUM_CLASSES = 182


class _BadAnnotation(Exception):
    """An annotation that cannot be rasterized (turned into a SisgenInputError by load)."""


def _is_number(v: Any) -> bool:
    return isinstance(v, Real) and not isinstance(v, bool)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def rle_string_counts(counts: str | bytes) -> list[int]:
    """Decode the run lengths of a compressed COCO RLE string.

    pycocotools decodes such strings without bounds checks, so :class:`CocoSource` checks
    them with this first.

    Raises:
        ValueError: The string is not a valid compressed RLE.

    """
    data = counts.encode("ascii") if isinstance(counts, str) else bytes(counts)
    out: list[int] = []
    p = 0
    while p < len(data):
        x = 0
        k = 0
        more = True
        while more:
            if p >= len(data):
                raise ValueError("truncated RLE string")
            c = data[p] - 48
            if not 0 <= c < 64:
                raise ValueError(f"invalid character {chr(data[p])!r} in RLE string")
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def _clean_segmentation(seg: Any, h: int, w: int) -> Any:
    """Check one annotation's segmentation and return it in a form pycocotools can take.

    Raises:
        _BadAnnotation: With the reason.

    """
    if isinstance(seg, list):
        polys = []
        for poly in seg:
            if not isinstance(poly, list) or not all(_is_number(v) for v in poly):
                raise _BadAnnotation("polygon is not a list of numbers")
            if len(poly) % 2:
                raise _BadAnnotation(f"polygon has an odd number of coordinates ({len(poly)})")
            if not all(math.isfinite(v) for v in poly):
                raise _BadAnnotation("polygon has non-finite coordinates")
            xs, ys = poly[0::2], poly[1::2]
            if xs and (min(xs) < -w or max(xs) > 2 * w or min(ys) < -h or max(ys) > 2 * h):
                raise _BadAnnotation(f"polygon coordinates far outside the {w}x{h} image")
            if len(poly) >= 6:  # fewer than 3 points: zero area, legal in COCO; skip it
                polys.append([float(v) for v in poly])
        return polys
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if not isinstance(size, list) or [int(v) if _is_int(v) else v for v in size] != [h, w]:
            raise _BadAnnotation(f"RLE size {size!r} does not match the image size [{h}, {w}]")
        if isinstance(counts, list):
            if not all(_is_int(v) and v >= 0 for v in counts) or sum(counts) != h * w:
                raise _BadAnnotation("uncompressed RLE counts are not run lengths summing to H*W")
            return {"size": [h, w], "counts": counts}
        if isinstance(counts, (str, bytes)):
            try:
                runs = rle_string_counts(counts)
            except ValueError as e:
                raise _BadAnnotation(f"invalid compressed RLE ({e})") from e
            if any(v < 0 for v in runs) or sum(runs) != h * w:
                raise _BadAnnotation("compressed RLE runs do not sum to H*W")
            return {"size": [h, w], "counts": counts}
        raise _BadAnnotation("RLE without usable 'counts'")
    raise _BadAnnotation(f"segmentation must be a polygon list or an RLE dict, not "
                         f"{type(seg).__name__}")


class _AnnotationFile:
    """One checked COCO JSON file and its pycocotools index."""

    def __init__(self, path: Path):
        self.path = path
        data = read_json(path)
        if not isinstance(data, dict):
            raise SisgenInputError("malformed COCO JSON: top level is not an object", path)
        for key in ("images", "annotations", "categories"):
            if not isinstance(data.get(key), list):
                raise SisgenInputError(f"malformed COCO JSON: no {key!r} list", path)
        images: dict[int, dict] = {}
        for img in data["images"]:
            if not (isinstance(img, dict) and _is_int(img.get("id"))
                    and _is_int(img.get("width")) and _is_int(img.get("height"))
                    and img["width"] > 0 and img["height"] > 0
                    and isinstance(img.get("file_name"), str)):
                raise SisgenInputError(
                    "malformed COCO JSON: an image record needs integer 'id', positive 'width'"
                    f" and 'height' and a 'file_name' (got {str(img)[:120]})",
                    path,
                )
            if img["id"] in images:
                raise SisgenInputError(f"malformed COCO JSON: duplicate image id {img['id']}",
                                       path)
            images[img["id"]] = img
        for ann in data["annotations"]:
            if not (isinstance(ann, dict) and "id" in ann and "category_id" in ann):
                raise SisgenInputError(
                    "malformed COCO JSON: an annotation needs 'id', 'image_id' and "
                    f"'category_id' (got {str(ann)[:120]})",
                    path,
                )
            if not _is_int(ann.get("image_id")) or ann["image_id"] not in images:
                raise SisgenInputError(
                    f"malformed COCO JSON: annotation {ann['id']!r} points at image "
                    f"{ann.get('image_id')!r}, which is not in 'images'",
                    path,
                )
        self.coco = COCO()
        self.coco.dataset = data
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                self.coco.createIndex()
        except Exception as e:  # pycocotools raises bare KeyError/TypeError
            raise SisgenInputError(f"malformed COCO JSON ({e!r})", path) from e
        self.images = images

    def masks(self, image_id: int) -> list[tuple[dict, np.ndarray]]:
        """Rasterize every annotation of ``image_id`` as ``(annotation, bool mask)``.

        Raises:
            SisgenInputError: An annotation is unusable (names this file and its id).

        """
        img = self.images[image_id]
        h, w = img["height"], img["width"]
        out = []
        for ann in self.coco.imgToAnns.get(image_id, []):
            try:
                if "segmentation" not in ann:
                    raise _BadAnnotation("no 'segmentation'")
                seg = _clean_segmentation(ann["segmentation"], h, w)
                if isinstance(seg, list) and not seg:
                    mask = np.zeros((h, w), dtype=bool)
                else:
                    rle = self.coco.annToRLE({"image_id": image_id, "segmentation": seg})
                    mask = mask_utils.decode(rle).astype(bool)
                if mask.shape != (h, w):
                    raise _BadAnnotation(f"mask shape {mask.shape} is not ({h}, {w})")
            except _BadAnnotation as e:
                raise SisgenInputError(
                    f"image {image_id}: annotation {ann['id']!r}: {e}", self.path
                ) from None
            except Exception as e:  # anything pycocotools rejects
                raise SisgenInputError(
                    f"image {image_id}: annotation {ann['id']!r}: unusable segmentation "
                    f"({type(e).__name__}: {e})",
                    self.path,
                ) from e
            out.append((ann, mask))
        return out


@register_source("coco")
class CocoSource(Source):
    """COCO instances + stuff JSON rasterized to dense COCO-Stuff maps (module docstring).

    Samples are the union of the images of both files, sorted by image id; sample ids are
    the image file stems (``000000000139``). ``meta`` has ``image_id``, ``file_name``,
    ``file`` (the instances JSON, or the stuff JSON without one), ``annotation_files`` and
    ``instances``. ``LabelMap.instance`` is ``None`` when there is no instances file.

    Args:
        root: The dataset root (holding ``annotations/``).
        split: ``train2017``, ``val2017``, ... (``train`` / ``val`` also work).
        instances_json: Use this instances file instead of the default path.
        stuff_json: Use this stuff file instead of the default path.

    Raises:
        SisgenInputError: Missing root, neither JSON file present, or a malformed JSON.

    """

    kind = "coco"

    def __init__(self, root: str | os.PathLike | None, split: str = "train2017", *,
                 instances_json: str | os.PathLike | None = None,
                 stuff_json: str | os.PathLike | None = None):
        self.root = require_root(root, self.kind)
        self.vocabulary = get_vocabulary("coco_stuff")
        ann_dir = self.root / "annotations"
        if (instances_json is None and stuff_json is None
                and not (ann_dir / f"instances_{split}.json").exists()
                and not (ann_dir / f"stuff_{split}.json").exists()
                and ((ann_dir / f"instances_{split}2017.json").exists()
                     or (ann_dir / f"stuff_{split}2017.json").exists())):
            split = f"{split}2017"
        self.split = split
        if instances_json is None and stuff_json is None:
            ipath, spath = ann_dir / f"instances_{split}.json", ann_dir / f"stuff_{split}.json"
            if not ipath.is_file() and not spath.is_file():
                raise SisgenInputError(
                    f"no COCO annotations found (looked for instances_{split}.json and "
                    f"stuff_{split}.json)",
                    ann_dir,
                )
            self.things = _AnnotationFile(ipath) if ipath.is_file() else None
            self.stuff = _AnnotationFile(spath) if spath.is_file() else None
        else:  # explicit files must exist (read_json names a missing one)
            self.things = None if instances_json is None else _AnnotationFile(Path(instances_json))
            self.stuff = None if stuff_json is None else _AnnotationFile(Path(stuff_json))

        images: dict[int, dict] = {}
        for af in (self.things, self.stuff):
            if af is None:
                continue
            for iid, img in af.images.items():
                known = images.get(iid)
                if known is None:
                    images[iid] = img
                elif (known["height"], known["width"]) != (img["height"], img["width"]):
                    raise SisgenInputError(
                        f"image {iid} is {img['width']}x{img['height']} here but "
                        f"{known['width']}x{known['height']} in the other annotation file",
                        af.path,
                    )
        if not images:
            raise SisgenInputError("no images in the COCO annotations", self._main_file)
        self.image_ids = sorted(images)
        self._images = images
        self._keys = unique_keys(
            [Path(images[i]["file_name"]).stem for i in self.image_ids],
            [str(i) for i in self.image_ids],
        )

    @property
    def _main_file(self) -> Path:
        af = self.things if self.things is not None else self.stuff
        assert af is not None
        return af.path

    def keys(self) -> list[str]:
        """Image file stems, in image-id order."""
        return list(self._keys)

    def _class_of(self, af: _AnnotationFile, ann: dict, image_id: int, *, stuff: bool) -> int:
        cid = ann.get("category_id")
        if _is_int(cid) and 1 <= cid <= _NUM_CLASSES:
            return cid - 1
        if stuff and cid == OTHER_CATEGORY:
            return IGNORE_ID
        raise SisgenInputError(
            f"image {image_id}: annotation {ann['id']!r}: category_id {cid!r} is not a "
            f"COCO-Stuff category (1..{_NUM_CLASSES}"
            f"{', 183 = other' if stuff else ''})",
            af.path,
        )

    def load(self, index: int) -> LabelMap:
        """Rasterize image ``index``; raises ``SisgenInputError`` for a bad annotation."""
        image_id = self.image_ids[index]
        img = self._images[image_id]
        h, w = img["height"], img["width"]
        semantic = np.full((h, w), IGNORE_ID, dtype=np.uint8)

        if self.stuff is not None and image_id in self.stuff.images:
            for ann, mask in self.stuff.masks(image_id):
                cls = self._class_of(self.stuff, ann, image_id, stuff=True)
                if cls != IGNORE_ID:
                    semantic[mask] = cls

        instance: np.ndarray | None = None
        records: list[dict] = []
        if self.things is not None:
            instance = np.zeros((h, w), dtype=np.int32)
            if image_id in self.things.images:
                items = self.things.masks(image_id)
                classes = [self._class_of(self.things, a, image_id, stuff=False)
                           for a, _ in items]
                areas = [int(m.sum()) for _, m in items]
                order = sorted(range(len(items)), key=lambda k: -areas[k])  # stable
                for k in order:
                    semantic[items[k][1]] = classes[k]
                    instance[items[k][1]] = k + 1
                visible = np.bincount(instance.ravel(), minlength=len(items) + 1)
                for k, (ann, _) in enumerate(items):
                    records.append({
                        "id": k + 1,
                        "annotation_id": ann["id"],
                        "category_id": ann["category_id"],
                        "class_id": classes[k],
                        "iscrowd": int(bool(ann.get("iscrowd", 0))),
                        "area": int(visible[k + 1]),
                    })

        files = [str(af.path) for af in (self.things, self.stuff) if af is not None]
        meta: dict = {
            "id": self._keys[index],
            "source": self.kind,
            "file": files[0],
            "annotation_files": files,
            "image_id": image_id,
            "file_name": img["file_name"],
            "size": (h, w),
            "split": self.split,
            "instances": records,
        }
        self.vocabulary.validate(semantic, files[0])
        return LabelMap(semantic, instance, meta)

    def photo(self, index: int) -> np.ndarray | None:
        """Return the photo ``root/{split}/<file_name>``, or ``None`` when it is not there."""
        p = self.root / self.split / self._images[self.image_ids[index]]["file_name"]
        return read_rgb(p) if p.is_file() else None
