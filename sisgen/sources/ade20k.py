"""ADE20K SceneParsing label maps (the ``ADEChallengeData2016`` release).

Layout (the official one)::

    root/images/{training,validation}/ADE_*.jpg         photos
    root/annotations/{training,validation}/ADE_*.png    uint8, 0 = other, 1..150 classes

``root`` may be the ``ADEChallengeData2016`` folder itself or its parent. The split names
``train`` and ``val`` are accepted for ``training`` and ``validation``. Maps are returned in
the ``ade20k`` vocabulary unchanged (0 = "other" is a class there, as the benchmark's
models with 151 inputs use it); the release has no instance maps, so ``instance`` is
``None``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import SisgenInputError
from ..io import read_rgb
from ..labelmap import LabelMap
from ..vocab import get_vocabulary
from .base import Source, register_source
from .folder import require_root, unique_keys

SPLIT_ALIASES = {"train": "training", "val": "validation"}
_PHOTO_EXTS = (".jpg", ".jpeg", ".png")


@register_source("ade20k")
class Ade20kSource(Source):
    """ADE20K SceneParsing annotations of one split.

    Sample ids are the file stems (``ADE_train_00000001``), sorted.

    Args:
        root: ``ADEChallengeData2016`` (or the folder holding it).
        split: ``training`` / ``validation`` (or ``train`` / ``val``).
        validate: Check every loaded map against the vocabulary (ids 0..150).

    Raises:
        SisgenInputError: Missing root or split folder, or no label maps in it.

    """

    kind = "ade20k"

    def __init__(self, root: str | os.PathLike | None, split: str = "training", *,
                 validate: bool = True):
        base = require_root(root, self.kind)
        if not (base / "annotations").is_dir() and (base / "ADEChallengeData2016").is_dir():
            base = base / "ADEChallengeData2016"
        self.root = base
        self.split = SPLIT_ALIASES.get(split, split)
        self.validate = validate
        self.vocabulary = get_vocabulary("ade20k")
        ann_dir = self.root / "annotations" / self.split
        if not ann_dir.is_dir():
            raise SisgenInputError(
                f"ADE20K split folder not found (expected annotations/{self.split}/; splits "
                "are training / validation, or train / val)",
                ann_dir,
            )
        files = sorted(p for p in ann_dir.iterdir()
                       if p.is_file() and p.suffix.lower() == ".png" and not p.name.startswith("."))
        if not files:
            raise SisgenInputError("no label maps found (looked for *.png)", ann_dir)
        self.files: list[Path] = files
        self._keys = unique_keys([p.stem for p in files], [p.suffix for p in files])

    def keys(self) -> list[str]:
        """File stems such as ``ADE_val_00000001``."""
        return list(self._keys)

    def photo_path(self, index: int) -> Path | None:
        """The photo of sample ``index`` under ``images/{split}/``, or ``None``."""
        stem = self.files[index].stem
        for ext in _PHOTO_EXTS:
            p = self.root / "images" / self.split / f"{stem}{ext}"
            if p.is_file():
                return p
        return None

    def load(self, index: int) -> LabelMap:
        """Read label map ``index`` (uint8, 0..150)."""
        path = self.files[index]
        semantic, meta = self.read_semantic(self._keys[index], path, split=self.split)
        return LabelMap(semantic, None, meta)

    def photo(self, index: int) -> np.ndarray | None:
        """Return the paired photo, or ``None`` when it is not there."""
        p = self.photo_path(index)
        return None if p is None else read_rgb(p)
