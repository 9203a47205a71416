"""A folder of PNG label maps, with optional instance maps and photos.

Layout (``root`` may also hold a ``{split}/`` sub-folder with this layout, which is then
used instead)::

    root/
      vocabulary.json | vocabulary.yaml   # optional; the class list (see sisgen.vocab)
      labels/*.png                        # label maps (or the PNGs directly in root/)
      instances/*.png                     # optional, 8 or 16 bit, matched by file stem
      images/*.jpg | *.png                # optional paired photos, matched by file stem

The helpers :func:`safe_key` and :func:`unique_keys` are shared by the other file-based
sources.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import SisgenInputError
from ..io import read_label_png, read_rgb
from ..labelmap import LabelMap
from ..vocab import Vocabulary, get_vocabulary
from .base import Source, register_source

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_PHOTO_EXTS = (".jpg", ".jpeg", ".png")
_VOCAB_FILES = ("vocabulary.json", "vocabulary.yaml", "vocabulary.yml")


def safe_key(name: str) -> str:
    """Turn a file stem into a file-system-safe sample id.

    Runs of characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``;
    leading dots are dropped so that no id names a hidden file or ``..``.
    """
    key = _UNSAFE.sub("_", name).lstrip(".")
    return key or "sample"


def unique_keys(names: Sequence[str], fallbacks: Sequence[str]) -> list[str]:
    """Safe, unique ids for ``names``; a clashing id gets ``_<fallback>`` appended.

    Args:
        names: Preferred names (file stems), one per sample.
        fallbacks: A distinguishing suffix per sample (an image id, a file extension).

    Returns:
        One id per sample, unique within the list.

    """
    keys = [safe_key(n) for n in names]
    counts: dict[str, int] = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    out: list[str] = []
    seen: set[str] = set()
    for k, fb in zip(keys, fallbacks, strict=True):
        if counts[k] > 1:
            k = safe_key(f"{k}_{fb}")
        base, n = k, 1
        while k in seen:  # still clashing (pathological names): number them
            n += 1
            k = f"{base}_{n}"
        seen.add(k)
        out.append(k)
    return out


def require_root(root: str | os.PathLike | None, kind: str) -> Path:
    """Check that a source's root folder was given and exists.

    Raises:
        SisgenInputError: No root given, or it is not a folder.

    """
    if root is None:
        raise SisgenInputError(f"the {kind!r} source needs a root folder")
    path = Path(root)
    if not path.is_dir():
        raise SisgenInputError(f"{kind} root folder not found", path)
    return path


@register_source("folder")
class FolderSource(Source):
    """PNG label maps in a folder (see the module docstring for the layout).

    Label maps are single-channel 8-bit PNGs of class ids in the vocabulary's id space
    (255 = ignore). Instance maps, when present, are 8- or 16-bit PNGs of the same size
    whose values are used as instance ids unchanged (0 = no instance). Sample ids are the
    label file stems. In a ``labels/`` folder, JPEG files are listed too so that loading
    them fails with a clear error instead of the files being silently skipped.

    Args:
        root: The dataset folder.
        split: Ignored unless ``root/{split}/`` exists, which then serves as the root.
        vocabulary: A preset name, a ``.json``/``.yaml`` vocabulary file or a
            :class:`~sisgen.vocab.Vocabulary`. When ``None``, ``vocabulary.json`` /
            ``vocabulary.yaml`` in the (split) root or in ``root`` is used.
        validate: Check every loaded map against the vocabulary.

    Raises:
        SisgenInputError: Missing root, no label maps, or no vocabulary.

    """

    kind = "folder"

    def __init__(
        self,
        root: str | os.PathLike | None,
        split: str | None = None,
        *,
        vocabulary: str | os.PathLike | Vocabulary | None = None,
        validate: bool = True,
    ):
        base = require_root(root, self.kind)
        self.root = base / split if split and (base / split).is_dir() else base
        self.validate = validate
        self.vocabulary = self._find_vocabulary(vocabulary, base)

        labels_dir = self.root / "labels"
        if labels_dir.is_dir():
            self.labels_dir = labels_dir
            exts = (".png", ".jpg", ".jpeg")
        else:
            self.labels_dir = self.root
            exts = (".png",)
        files = sorted(
            p for p in self.labels_dir.iterdir()
            if p.is_file() and p.suffix.lower() in exts and not p.name.startswith(".")
        )
        if not files:
            raise SisgenInputError(
                "no label maps found (looked for labels/*.png, then *.png)", self.root
            )
        self.files = files
        self._keys = unique_keys([p.stem for p in files], [p.suffix.lstrip(".") for p in files])
        self.instances_dir = self.root / "instances"
        self.images_dir = self.root / "images"

    def _find_vocabulary(
        self, vocabulary: str | os.PathLike | Vocabulary | None, base: Path
    ) -> Vocabulary:
        if vocabulary is not None:
            return get_vocabulary(vocabulary)
        for folder in dict.fromkeys((self.root, base)):
            for name in _VOCAB_FILES:
                if (folder / name).is_file():
                    return get_vocabulary(folder / name)
        raise SisgenInputError(
            "no vocabulary given and no vocabulary.json / vocabulary.yaml in the folder; pass "
            "vocabulary=<preset name, .json/.yaml file or Vocabulary>",
            self.root,
        )

    def keys(self) -> list[str]:
        """Return the label file stems, sorted by file name."""
        return list(self._keys)

    def _instance_path(self, index: int) -> Path | None:
        p = self.instances_dir / f"{self.files[index].stem}.png"
        return p if p.is_file() else None

    def _photo_path(self, index: int) -> Path | None:
        stem = self.files[index].stem
        for ext in _PHOTO_EXTS:
            p = self.images_dir / f"{stem}{ext}"
            if p.is_file():
                return p
        return None

    def load(self, index: int) -> LabelMap:
        """Read label map ``index`` (and its instance map, when there is one)."""
        path = self.files[index]
        semantic, meta = self.read_semantic(self._keys[index], path)
        instance: np.ndarray | None = None
        ipath = self._instance_path(index)
        if ipath is not None:
            instance = read_label_png(ipath, allow_16bit=True).astype(np.int32)
            meta["instance_file"] = str(ipath)
        return LabelMap(semantic, instance, meta)

    def photo(self, index: int) -> np.ndarray | None:
        """Return the photo ``images/<stem>.{jpg,jpeg,png}``, or ``None``."""
        p = self._photo_path(index)
        return None if p is None else read_rgb(p)
