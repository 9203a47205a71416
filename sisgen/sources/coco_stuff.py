"""COCO-Stuff dense label maps as distributed (``stuffthingmaps_trainval2017``).

Layout::

    root/stuffthingmaps_trainval2017/{split}/*.png   uint8, COCO id - 1 (0..181), 255 unlabeled
    root/instance_maps/{split}/*.png                 optional, SPADE-style instance maps
    root/{split}/*.jpg                               optional photos

``split`` is ``train2017`` / ``val2017``; ``train`` / ``val`` are accepted and mean the same
when only the ``2017`` folders exist.

SPADE-style instance maps store, on thing pixels, a running instance counter that starts at
**0** (so 0 is a real instance there), and on every other pixel the pixel's label value.
Thing pixels that no instance covers also keep their label value. They are turned into
instance ids with 0 = none as follows (:func:`spade_instances_to_ids`):

* stuff and unlabeled pixels (by the semantic map) get 0;
* the counter values are the run ``0..N-1`` of values found on thing pixels (the longest
  run starting at 0); a thing pixel whose value equals its own class id and lies outside
  that run is an uncovered thing pixel and gets 0;
* every other thing pixel gets ``value + 1``, so the instance numbering is the file's
  counter shifted by one.

The instance map and the label map of the distribution disagree by a pixel or two along
some boundaries; instance edges follow the instance map there, as they do in SPADE.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import SisgenInputError
from ..io import read_label_png, read_rgb
from ..labelmap import LabelMap
from ..vocab import Vocabulary, get_vocabulary
from .base import Source, register_source
from .folder import require_root, unique_keys

MAPS_DIR = "stuffthingmaps_trainval2017"
INSTANCE_DIR = "instance_maps"


def resolve_coco_split(root: Path, split: str, sub: str) -> str:
    """Map ``train``/``val`` to ``train2017``/``val2017`` when only the latter exists.

    Args:
        root: The dataset root.
        split: The requested split.
        sub: The folder (relative to ``root``) holding one sub-folder per split.

    """
    if not (root / sub / split).exists() and (root / sub / f"{split}2017").exists():
        return f"{split}2017"
    return split


def spade_instances_to_ids(
    raw: np.ndarray, semantic: np.ndarray, vocabulary: Vocabulary
) -> np.ndarray:
    """Turn a SPADE-style COCO instance map into int32 instance ids with 0 = none.

    See the module docstring for the rule.

    Args:
        raw: The instance map as read from its PNG.
        semantic: The matching label map (same shape).
        vocabulary: Gives the thing classes.

    Returns:
        An ``H×W`` int32 array: ``counter + 1`` on instance pixels, 0 elsewhere.

    """
    raw = raw.astype(np.int32)
    thing = vocabulary.thing_table()[np.clip(semantic, 0, 255)]
    present = np.zeros(int(raw.max(initial=0)) + 2, dtype=bool)
    present[np.unique(raw[thing])] = True
    n_counter = int(np.argmin(present))  # first value missing from the run 0, 1, 2, ...
    uncovered = (raw == semantic) & (raw >= n_counter)
    return np.where(thing & ~uncovered, raw + 1, 0).astype(np.int32)


@register_source("coco_stuff")
class CocoStuffSource(Source):
    """The distributed COCO-Stuff label PNGs of one split, with SPADE instance maps.

    Sample ids are the PNG stems (``000000000139``), sorted; ``meta["image_id"]`` is the
    COCO image id when the stem is numeric.

    Args:
        root: The COCO-Stuff root (holding ``stuffthingmaps_trainval2017/``).
        split: ``train2017`` or ``val2017`` (``train`` / ``val`` also work).
        instances: Read ``instance_maps/{split}/<stem>.png`` when present.
        validate: Check every loaded map against the ``coco_stuff`` vocabulary.

    Raises:
        SisgenInputError: Missing root or split folder, or no label maps in it.

    """

    kind = "coco_stuff"

    def __init__(self, root: str | os.PathLike | None, split: str = "train2017", *,
                 instances: bool = True, validate: bool = True):
        self.root = require_root(root, self.kind)
        self.split = resolve_coco_split(self.root, split, MAPS_DIR)
        self.use_instances = instances
        self.validate = validate
        self.vocabulary = get_vocabulary("coco_stuff")
        maps_dir = self.root / MAPS_DIR / self.split
        if not maps_dir.is_dir():
            raise SisgenInputError(
                f"COCO-Stuff label folder not found (expected {MAPS_DIR}/{self.split}/*.png)",
                maps_dir,
            )
        files = sorted(p for p in maps_dir.glob("*.png") if not p.name.startswith("."))
        if not files:
            raise SisgenInputError("no label maps found (looked for *.png)", maps_dir)
        self.files: list[Path] = files
        self._keys = unique_keys([p.stem for p in files], [str(i) for i in range(len(files))])

    def keys(self) -> list[str]:
        """Return the PNG stems, sorted."""
        return list(self._keys)

    def instance_path(self, index: int) -> Path:
        """Where the SPADE instance map of sample ``index`` is (it may not exist)."""
        return self.root / INSTANCE_DIR / self.split / self.files[index].name

    def load(self, index: int) -> LabelMap:
        """Read label map ``index`` and, when present, its instance map."""
        path = self.files[index]
        semantic, meta = self.read_semantic(self._keys[index], path, split=self.split)
        if path.stem.isdigit():
            meta["image_id"] = int(path.stem)
        instance: np.ndarray | None = None
        ipath = self.instance_path(index)
        if self.use_instances and ipath.is_file():
            raw = read_label_png(ipath, allow_16bit=True)
            meta["instance_file"] = str(ipath)
            if raw.shape != semantic.shape:  # LabelMap names instance_file in its error
                return LabelMap(semantic, raw, meta)
            instance = spade_instances_to_ids(raw, semantic, self.vocabulary)
        return LabelMap(semantic, instance, meta)

    def photo(self, index: int) -> np.ndarray | None:
        """Return the photo ``{split}/<stem>.jpg`` (or ``.png``), or ``None``."""
        stem = self.files[index].stem
        for ext in (".jpg", ".jpeg", ".png"):
            p = self.root / self.split / f"{stem}{ext}"
            if p.is_file():
                return read_rgb(p)
        return None
