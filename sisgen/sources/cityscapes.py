"""Cityscapes ``gtFine`` label maps (``labelIds`` + ``instanceIds``) and ``leftImg8bit`` photos.

Layout (the official one)::

    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png     uint8, 0..33
    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_instanceIds.png  uint16, optional
    root/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png    optional photo

Semantic maps are kept in the ``labelIds`` space (the ``cityscapes`` vocabulary, as SPADE and
OASIS use them); convert to trainIds with ``Vocabulary.train_id_table``.
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
from .folder import require_root, safe_key

_LABEL_SUFFIX = "_gtFine_labelIds.png"
_INSTANCE_SUFFIX = "_gtFine_instanceIds.png"
_PHOTO_SUFFIX = "_leftImg8bit.png"


@register_source("cityscapes")
class CityscapesSource(Source):
    """Cityscapes fine annotations of one split.

    ``LabelMap.semantic`` is the uint8 ``labelIds`` map. ``LabelMap.instance`` keeps the
    dataset's own instance ids ``labelId * 1000 + k`` where ``instanceIds >= 1000`` and is 0
    elsewhere (the raw file stores the plain labelId on stuff pixels and on thing pixels
    that belong to a crowd/group region; both become "no instance"). Without an
    ``instanceIds`` file, ``instance`` is ``None``. Sample ids are the file stems without
    ``_gtFine_labelIds`` (``aachen_000000_000019``), sorted by city, then name.

    Args:
        root: The Cityscapes root (holding ``gtFine/``).
        split: ``train``, ``val`` or ``test`` (any folder name under ``gtFine/``).
        validate: Check every loaded map against the vocabulary.
        vocabulary: The id space of the maps: ``cityscapes`` (default) or any other
            vocabulary written in this layout (e.g. a ToyCity dataset made by the
            ``cityscapes`` writer).

    Raises:
        SisgenInputError: Missing root or split folder, or no label maps in it.

    """

    kind = "cityscapes"

    def __init__(self, root: str | os.PathLike | None, split: str = "train", *,
                 validate: bool = True, vocabulary: str | os.PathLike | Vocabulary = "cityscapes"):
        self.root = require_root(root, self.kind)
        self.split = split
        self.validate = validate
        self.vocabulary = get_vocabulary(vocabulary)
        split_dir = self.root / "gtFine" / split
        if not split_dir.is_dir():
            raise SisgenInputError(
                f"Cityscapes split folder not found (expected gtFine/{split}/<city>/)", split_dir
            )
        files = sorted(split_dir.glob(f"*/*{_LABEL_SUFFIX}"))
        if not files:
            raise SisgenInputError(
                f"no label maps found (looked for <city>/*{_LABEL_SUFFIX})", split_dir
            )
        self.files: list[Path] = files
        self._keys = [safe_key(p.name[: -len(_LABEL_SUFFIX)]) for p in files]
        if len(set(self._keys)) != len(self._keys):  # same frame name in two cities
            self._keys = [safe_key(f"{p.parent.name}_{k}")
                          for p, k in zip(files, self._keys, strict=True)]

    def keys(self) -> list[str]:
        """Sample ids such as ``aachen_000000_000019``."""
        return list(self._keys)

    def _stem(self, index: int) -> str:
        return self.files[index].name[: -len(_LABEL_SUFFIX)]

    def instance_path(self, index: int) -> Path:
        """Where the ``instanceIds`` PNG of sample ``index`` is (it may not exist)."""
        return self.files[index].with_name(self._stem(index) + _INSTANCE_SUFFIX)

    def photo_path(self, index: int) -> Path:
        """Where the ``leftImg8bit`` photo of sample ``index`` is (it may not exist)."""
        city = self.files[index].parent.name
        return (self.root / "leftImg8bit" / self.split / city
                / (self._stem(index) + _PHOTO_SUFFIX))

    def load(self, index: int) -> LabelMap:
        """Read the ``labelIds`` (and ``instanceIds``) PNGs of sample ``index``."""
        path = self.files[index]
        semantic = read_label_png(path)
        if self.validate:
            self.vocabulary.validate(semantic, path)
        meta: dict = {
            "id": self._keys[index],
            "source": self.kind,
            "file": str(path),
            "size": (int(semantic.shape[0]), int(semantic.shape[1])),
            "city": path.parent.name,
            "split": self.split,
        }
        instance: np.ndarray | None = None
        ipath = self.instance_path(index)
        if ipath.is_file():
            raw = read_label_png(ipath, allow_16bit=True).astype(np.int32)
            instance = np.where(raw >= 1000, raw, 0).astype(np.int32)
            meta["instance_file"] = str(ipath)
        return LabelMap(semantic, instance, meta)

    def photo(self, index: int) -> np.ndarray | None:
        """Return the ``leftImg8bit`` photo, or ``None`` when it is not there."""
        p = self.photo_path(index)
        return read_rgb(p) if p.is_file() else None
