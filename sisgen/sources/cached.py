"""An on-disk cache of decoded label maps: decode (and resize) each map once, then read arrays.

Decoding a Cityscapes map (two 2-megapixel PNGs, one of them 16-bit) and validating it
costs ~30 ms; reading the decoded arrays back costs ~1-2 ms, and a map cached at the run
resolution (``size=``, for runs that resize before editing) a fraction of that. Runs
that pass over the same maps again -- more seeds, more samples, another recipe, training
epochs -- read the cache::

    src = CachedSource(sources.open("cityscapes", root, split="val"), "cache/", size=(256, 512))

Each entry is one file per map (``semantic``, ``instance`` when the map has one, and the
map's ``meta`` as JSON, packed by :func:`sisgen.io.encode_arrays`: raw arrays, no
compression, no pickle), written atomically. Entries live in
a sub-folder named by a digest of the source's description (kind, class, vocabulary,
settings such as root and split, sample ids) and the cache size, so one cache folder
serves several sources and sizes without mixing them. An entry records the size and
modification time of the files it was decoded from (``meta["file"]``,
``meta["instance_file"]``, ...) and is decoded anew when they change; an unreadable entry
is decoded anew too. Maps whose ``meta`` is not plain JSON are not cached.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import SisgenInputError
from ..io import atomic_write_bytes, encode_arrays, read_arrays
from ..labelmap import LabelMap
from ..vocab import Vocabulary
from .base import Source

_PLAIN = (str, int, float, bool, type(None))


def describe_source(source: Source) -> dict[str, Any]:
    """What identifies a source's maps: kind, class, vocabulary, settings, sample ids.

    Settings are the source's public attributes that are plain data (strings, numbers,
    paths, short lists and tuples of them), described recursively through the objects
    it holds (a wrapped source, a remap, ToyCity's generator), so two sources opened
    with different roots, splits, sizes or options get different descriptions.
    """
    desc = _describe(source, 3)
    desc["keys"] = hashlib.sha256("\n".join(source.keys()).encode()).hexdigest()
    return desc


def _describe(value: Any, depth: int) -> Any:
    """Plain data describing ``value`` (``None`` when there is nothing plain to say)."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Vocabulary):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        items = [_describe(v, depth - 1) for v in value[:65]]
        return items if len(value) <= 64 and None not in items else None
    if isinstance(value, dict):
        items = {str(k): _describe(v, depth - 1) for k, v in value.items()}
        return items if None not in items.values() else None
    if depth <= 0 or not hasattr(value, "__dict__"):
        return None
    out: dict[str, Any] = {"class": f"{type(value).__module__}.{type(value).__qualname__}"}
    for name, item in sorted(vars(value).items()):
        if not name.startswith("_"):
            described = _describe(item, depth - 1)
            if described is not None:
                out[name] = described
    return out


class CachedSource(Source):
    """A source whose decoded (and optionally resized) maps are kept on disk.

    Keys, length, vocabulary, kind and photos are the wrapped source's, so a run records
    the same provenance with or without the cache; a map read from the cache equals the
    wrapped source's map (resized to ``size`` with :meth:`LabelMap.resized` when given).

    Args:
        inner: The wrapped source.
        folder: The cache folder (created when missing).
        size: ``(H, W)``: cache the maps resized to this size (a run that resizes before
            editing, ``generate(resize_first=True)``, then reads maps at its resolution);
            ``None``: the maps at their own size.

    Raises:
        SisgenInputError: The folder cannot be created, or ``size`` is not two positive
            integers.
    """

    def __init__(self, inner: Source, folder: str | os.PathLike,
                 size: tuple[int, int] | None = None):
        if size is not None:
            if len(tuple(size)) != 2 or any(int(v) < 1 for v in size):
                raise SisgenInputError(f"cache size must be (height, width) > 0, got {size!r}")
            size = (int(size[0]), int(size[1]))
        self.inner = inner
        self.size = size
        self.kind = inner.kind
        self.vocabulary = inner.vocabulary
        self.validate = inner.validate
        self._keys = inner.keys()
        desc = {"source": describe_source(inner), "size": list(size) if size else None}
        digest = hashlib.sha256(json.dumps(desc, sort_keys=True, default=str).encode())
        self.folder = Path(folder) / f"{inner.kind}-{digest.hexdigest()[:16]}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SisgenInputError(f"cannot create the map cache folder ({e.strerror})",
                                   self.folder) from None
        about = self.folder / "source.json"
        if not about.is_file():
            atomic_write_bytes(about, json.dumps(desc, indent=1, default=str).encode())

    def keys(self) -> list[str]:
        """The wrapped source's sample ids."""
        return list(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def entry_path(self, index: int) -> Path:
        """The cache file of sample ``index``."""
        return self.folder / f"{self._keys[index]}.map"

    def load(self, index: int) -> LabelMap:
        """Read map ``index`` from the cache, or decode it, cache it and return it."""
        path = self.entry_path(index)
        cached = _read_entry(path)
        if cached is not None:
            return cached
        lm = self.inner.load(index)
        if self.size is not None and lm.shape != self.size:
            lm = lm.resized(self.size)
        data = _entry_bytes(lm)
        if data is not None:
            atomic_write_bytes(path, data)
        return lm

    def photo(self, index: int) -> np.ndarray | None:
        """The wrapped source's photo (not cached)."""
        return self.inner.photo(index)

    def __repr__(self) -> str:
        return f"<CachedSource {self.kind} n={len(self)} size={self.size} at {self.folder}>"


# ----------------------------------------------------------------------------- entries
def _file_stamps(meta: dict[str, Any]) -> dict[str, list[int]]:
    """``{path: [size, mtime_ns]}`` of the files a map was decoded from (``*file`` keys)."""
    stamps = {}
    for key, value in meta.items():
        if key.endswith("file") and isinstance(value, str) and os.path.isfile(value):
            st = os.stat(value)
            stamps[value] = [st.st_size, st.st_mtime_ns]
    return stamps


def _to_json(value: Any) -> Any:
    """``value`` as JSON, tuples marked so that they come back as tuples."""
    if isinstance(value, tuple):
        return {"__tuple__": [_to_json(v) for v in value]}
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, _PLAIN):
        return value
    raise TypeError(f"not plain JSON: {type(value).__name__}")


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_from_json(v) for v in value["__tuple__"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    return value


def _entry_bytes(lm: LabelMap) -> bytes | None:
    """A map as cache-entry bytes, or ``None`` when its ``meta`` is not plain JSON.

    Instance ids are stored in the smallest integer type that holds them (Cityscapes'
    ``class * 1000 + k`` in 16 bits: half the bytes to read back).
    """
    try:
        header = {"meta": _to_json(lm.meta), "stamps": _file_stamps(lm.meta)}
    except TypeError:
        return None
    arrays = {"semantic": lm.semantic}
    if lm.instance is not None:
        inst = lm.instance
        lo, hi = (int(inst.min()), int(inst.max())) if inst.size else (0, 0)
        for small in (np.uint8, np.uint16):
            if lo >= 0 and hi <= np.iinfo(small).max:
                inst = inst.astype(small)
                break
        arrays["instance"] = inst
    return encode_arrays(arrays, header)


def _read_entry(path: Path) -> LabelMap | None:
    """The cached map at ``path``, or ``None``: missing, unreadable or stale."""
    if not path.is_file():
        return None
    try:
        arrays, header = read_arrays(path)
        if not _file_stamps_current(header["stamps"]):
            return None
        return LabelMap(arrays["semantic"], arrays.get("instance"), _from_json(header["meta"]))
    except (SisgenInputError, KeyError, TypeError, ValueError):
        return None


def _file_stamps_current(stamps: dict[str, list[int]]) -> bool:
    for file, (size, mtime) in stamps.items():
        try:
            st = os.stat(file)
        except OSError:
            return False
        if st.st_size != size or st.st_mtime_ns != mtime:
            return False
    return True
