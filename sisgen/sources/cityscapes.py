"""Cityscapes ``gtFine`` label maps (``labelIds`` + ``instanceIds``, or the polygon JSON files).

Layout (the official one)::

    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png     uint8, 0..33
    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_instanceIds.png  uint16, optional
    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_polygons.json    polygons
    root/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png    optional photo

Semantic maps are kept in the ``labelIds`` space (the ``cityscapes`` vocabulary, as SPADE and
OASIS use them); convert to trainIds with ``Vocabulary.train_id_table`` or the
``cityscapes->cityscapes_trainid`` remap (:mod:`sisgen.remap`).

With ``annotations="polygons"`` the maps are rasterized from the ``*_gtFine_polygons.json``
files the way the official ``json2labelImg`` / ``json2instanceImg`` scripts do it (see
:func:`rasterize_polygons`), so datasets that ship only polygons (or edited polygons) can be
used directly.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from ..errors import SisgenInputError
from ..io import read_json, read_label_png, read_rgb
from ..labelmap import LabelMap
from ..vocab import Vocabulary, get_vocabulary
from .base import Source, register_source
from .folder import require_root, safe_key

_LABEL_SUFFIX = "_gtFine_labelIds.png"
_INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
_POLYGON_SUFFIX = "_gtFine_polygons.json"
_PHOTO_SUFFIX = "_leftImg8bit.png"
_GROUP = "group"
# Labels of the dataset definition that are not label-map values (labelId -1): drawn by no
# official conversion, so skipped here too.
_NOT_DRAWN = frozenset({"license plate"})


def _polygon_points(obj: object) -> np.ndarray | None:
    """An object's ``polygon`` as an ``N×2`` int32 array, or ``None`` when malformed."""
    if not isinstance(obj, list):
        return None
    pts = []
    for pt in obj:
        if not (isinstance(pt, (list, tuple)) and len(pt) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                        and np.isfinite(v) for v in pt)):
            return None
        pts.append((round(pt[0]), round(pt[1])))
    return np.asarray(pts, dtype=np.int32).reshape(-1, 2)


def rasterize_polygons(data: object, vocabulary: Vocabulary,
                       path: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Rasterize a Cityscapes ``*_gtFine_polygons.json`` document.

    Follows the official conversion scripts: the map starts as 0 (``unlabeled``); objects
    are drawn in file order, later ones over earlier ones; objects marked ``deleted`` and
    ``license plate`` objects are skipped; a label ``<name>group`` (``cargroup``,
    ``persongroup``) is drawn as ``<name>`` without an instance id; every other object of a
    thing class gets the instance id ``labelId * 1000 + k`` with ``k = 0, 1, ...`` counted
    per class in file order (as in the distributed ``instanceIds`` files). Polygons are
    filled with ``cv2.fillPoly`` on the integer vertices, boundary pixels included.

    Args:
        data: The parsed JSON (``imgHeight``, ``imgWidth``, ``objects``).
        vocabulary: Gives label names -> ids and the thing classes (``cityscapes``).
        path: The JSON file, for error messages.

    Returns:
        ``(semantic uint8, instance int32)``, instance 0 where there is none.

    Raises:
        SisgenInputError: Naming ``path``: missing/bad fields, a malformed polygon, or a
            label name the vocabulary does not know.

    """
    if not isinstance(data, dict):
        raise SisgenInputError("malformed polygons JSON: top level is not an object", path)
    h, w, objects = data.get("imgHeight"), data.get("imgWidth"), data.get("objects")
    if not (isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0):
        raise SisgenInputError("malformed polygons JSON: needs positive integer 'imgHeight' "
                               "and 'imgWidth'", path)
    if not isinstance(objects, list):
        raise SisgenInputError("malformed polygons JSON: no 'objects' list", path)
    semantic = np.zeros((h, w), dtype=np.uint8)
    instance = np.zeros((h, w), dtype=np.int32)
    counts: dict[int, int] = {}
    for k, obj in enumerate(objects):
        if not isinstance(obj, dict) or not isinstance(obj.get("label"), str):
            raise SisgenInputError(f"malformed polygons JSON: object {k} has no 'label'", path)
        if obj.get("deleted"):
            continue
        label = obj["label"]
        if label in _NOT_DRAWN:
            continue
        group = False
        try:
            cls = vocabulary[label]
        except KeyError:
            base = label[: -len(_GROUP)] if label.endswith(_GROUP) else None
            try:
                if base is None:
                    raise KeyError(label) from None
                cls = vocabulary[base]
                group = True
            except KeyError:
                raise SisgenInputError(
                    f"object {k}: label {label!r} is not a {vocabulary.name!r} class", path
                ) from None
        pts = _polygon_points(obj.get("polygon"))
        if pts is None:
            raise SisgenInputError(
                f"object {k} ({label!r}): 'polygon' must be a list of [x, y] numbers", path
            )
        if len(pts) == 0:
            continue
        mask = np.zeros((h, w), dtype=np.uint8)
        cv2.fillPoly(mask, [pts], 1)
        on = mask.astype(bool)
        semantic[on] = cls.id
        if cls.is_thing and not group:
            n = counts.get(cls.id, 0)
            counts[cls.id] = n + 1
            instance[on] = cls.id * 1000 + n
        else:
            instance[on] = 0
    return semantic, instance


_DECODER: dict[int, ThreadPoolExecutor] = {}
_DECODER_LOCK = threading.Lock()


def _decoder() -> ThreadPoolExecutor:
    """This process's helper thread for a map's second PNG (made on first use).

    Keyed by process id: a forked child (a fork-started DataLoader worker) inherits the
    parent's executor without its thread, so it makes its own.
    """
    pid = os.getpid()
    with _DECODER_LOCK:
        pool = _DECODER.get(pid)
        if pool is None:
            _DECODER.clear()
            pool = _DECODER[pid] = ThreadPoolExecutor(1, thread_name_prefix="sisgen-decode")
        return pool


@register_source("cityscapes")
class CityscapesSource(Source):
    """Cityscapes fine annotations of one split.

    ``LabelMap.semantic`` is the uint8 ``labelIds`` map. ``LabelMap.instance`` keeps the
    dataset's own instance ids ``labelId * 1000 + k`` where ``instanceIds >= 1000`` and is 0
    elsewhere (the raw file stores the plain labelId on stuff pixels and on thing pixels
    that belong to a crowd/group region; both become "no instance"). Without an
    ``instanceIds`` file, ``instance`` is ``None``. Sample ids are the file stems without
    ``_gtFine_labelIds`` (``aachen_000000_000019``), sorted by city, then name.

    With ``annotations="polygons"`` the samples are the ``*_gtFine_polygons.json`` files,
    rasterized by :func:`rasterize_polygons`; ``instance`` is then always an array, and
    ``meta["file"]`` names the JSON file.

    Args:
        root: The Cityscapes root (holding ``gtFine/``).
        split: ``train``, ``val`` or ``test`` (any folder name under ``gtFine/``).
        validate: Check every loaded map against the vocabulary.
        vocabulary: The id space of the maps: ``cityscapes`` (default) or any other
            vocabulary written in this layout (e.g. a ToyCity dataset made by the
            ``cityscapes`` writer).
        annotations: ``"labelIds"`` (default: the PNG maps) or ``"polygons"`` (the JSON
            polygon files).

    Raises:
        SisgenInputError: Missing root or split folder, or no label maps in it.

    """

    kind = "cityscapes"

    def __init__(self, root: str | os.PathLike | None, split: str = "train", *,
                 validate: bool = True, vocabulary: str | os.PathLike | Vocabulary = "cityscapes",
                 annotations: str = "labelIds"):
        self.root = require_root(root, self.kind)
        if annotations not in ("labelIds", "polygons"):
            raise SisgenInputError(
                f"cityscapes annotations must be 'labelIds' or 'polygons', not {annotations!r}"
            )
        self.annotations = annotations
        suffix = _LABEL_SUFFIX if annotations == "labelIds" else _POLYGON_SUFFIX
        self._suffix = suffix
        self.split = split
        self.validate = validate
        self.vocabulary = get_vocabulary(vocabulary)
        split_dir = self.root / "gtFine" / split
        if not split_dir.is_dir():
            raise SisgenInputError(
                f"Cityscapes split folder not found (expected gtFine/{split}/<city>/)", split_dir
            )
        files = sorted(split_dir.glob(f"*/*{suffix}"))
        if not files:
            raise SisgenInputError(
                f"no label maps found (looked for <city>/*{suffix})", split_dir
            )
        self.files: list[Path] = files
        self._keys = [safe_key(p.name[: -len(suffix)]) for p in files]
        if len(set(self._keys)) != len(self._keys):  # same frame name in two cities
            self._keys = [safe_key(f"{p.parent.name}_{k}")
                          for p, k in zip(files, self._keys, strict=True)]

    def keys(self) -> list[str]:
        """Sample ids such as ``aachen_000000_000019``."""
        return list(self._keys)

    def _stem(self, index: int) -> str:
        return self.files[index].name[: -len(self._suffix)]

    def instance_path(self, index: int) -> Path:
        """Where the ``instanceIds`` PNG of sample ``index`` is (it may not exist)."""
        return self.files[index].with_name(self._stem(index) + _INSTANCE_SUFFIX)

    def photo_path(self, index: int) -> Path:
        """Where the ``leftImg8bit`` photo of sample ``index`` is (it may not exist)."""
        city = self.files[index].parent.name
        return (self.root / "leftImg8bit" / self.split / city
                / (self._stem(index) + _PHOTO_SUFFIX))

    def load(self, index: int) -> LabelMap:
        """Read the ``labelIds`` (and ``instanceIds``) PNGs, or the polygons, of ``index``."""
        path = self.files[index]
        if self.annotations == "polygons":
            return self._load_polygons(index)
        ipath = self.instance_path(index)
        # the instance PNG (16-bit, the slower one) decodes on a helper thread while this one
        # decodes the labels: OpenCV releases the GIL, so a second core shortens a load
        pending = _decoder().submit(read_label_png, ipath, allow_16bit=True) \
            if ipath.is_file() else None
        try:
            semantic, meta = self.read_semantic(self._keys[index], path, city=path.parent.name,
                                                split=self.split)
        except BaseException:
            if pending is not None:
                pending.cancel()
            raise
        instance: np.ndarray | None = None
        if pending is not None:
            raw = pending.result()
            instance = raw.astype(np.int32)
            instance[raw < 1000] = 0  # stuff and crowd pixels store their plain labelId
            meta["instance_file"] = str(ipath)
        return LabelMap(semantic, instance, meta)

    def _load_polygons(self, index: int) -> LabelMap:
        path = self.files[index]
        semantic, instance = rasterize_polygons(read_json(path), self.vocabulary, path)
        meta: dict = {
            "id": self._keys[index],
            "source": self.kind,
            "file": str(path),
            "size": (int(semantic.shape[0]), int(semantic.shape[1])),
            "city": path.parent.name,
            "split": self.split,
            "annotations": "polygons",
        }
        return LabelMap(semantic, instance, meta)

    def photo(self, index: int) -> np.ndarray | None:
        """Return the ``leftImg8bit`` photo, or ``None`` when it is not there."""
        p = self.photo_path(index)
        return read_rgb(p) if p.is_file() else None
