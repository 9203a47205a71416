"""A bank of object instances cut out of label maps, for the ``paste`` edit.

An :class:`InstanceBank` holds one :class:`BankItem` per instance: its semantic class, a
binary mask cropped to the instance's bounding box, the id of the map it came from, where
it sat there (bounding box and map size, which ``paste`` uses for perspective scaling).

Build one from label maps or a source, keep it next to a recipe as a single ``.npz`` file
(no pickle: the masks are bit-packed into one ``uint8`` array, the index is a JSON text
stored as bytes), and load it back::

    bank = InstanceBank.from_source(source, classes=["car", "person"], min_pixels=200)
    bank.save("cars_people.npz")
    bank = InstanceBank.load("cars_people.npz")

Which instances go in: every nonzero instance id of a map (its class is the most common
class under it; pixels of other classes are dropped), limited to ``classes`` (default:
the vocabulary's thing classes when a vocabulary is known, else every class), with at
least ``min_pixels`` pixels, and by default not touching the map border (a truncated car
pasted mid-road looks cut in half). Maps without an instance map contribute the
8-connected components of each selected thing class when a vocabulary is known.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import SisgenInputError
from .labelmap import LabelMap
from .vocab import Vocabulary

__all__ = ["BankItem", "InstanceBank", "load_bank_cached"]

FORMAT = "sisgen.instance_bank"
VERSION = 1


@dataclass(frozen=True)
class BankItem:
    """One instance of the bank.

    Attributes:
        class_id: Semantic class id of the instance.
        mask: ``h×w`` boolean mask, cropped to the instance's bounding box.
        source_id: Id of the label map it came from.
        bbox: ``(y0, x0, y1, x1)`` in the source map (end exclusive).
        source_shape: ``(H, W)`` of the source map.
        instance_id: The instance id it had in the source map (0 for a component found
            without an instance map).

    """

    class_id: int
    mask: np.ndarray
    source_id: str
    bbox: tuple[int, int, int, int]
    source_shape: tuple[int, int]
    instance_id: int = 0

    @property
    def size(self) -> tuple[int, int]:
        """``(h, w)`` of the mask."""
        return int(self.mask.shape[0]), int(self.mask.shape[1])

    @property
    def pixels(self) -> int:
        """Number of mask pixels."""
        return int(self.mask.sum())


def _class_ids(
    classes: Sequence[int | str] | int | str | None, vocab: Vocabulary | None
) -> set[int] | None:
    """Resolve ``classes`` to ids; ``None``: thing ids with a vocabulary, else all."""
    if classes is None:
        return None if vocab is None else set(vocab.thing_ids)
    if isinstance(classes, (str, int)):
        classes = [classes]
    out: set[int] = set()
    for c in classes:
        if isinstance(c, str):
            if vocab is None:
                raise SisgenInputError(f"class name {c!r} needs a vocabulary")
            out.add(vocab.resolve(c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool):
            out.add(int(c))
        else:
            raise SisgenInputError(f"class must be a name or an integer id, got {c!r}")
    return out


def _bboxes(labels: np.ndarray, n: int) -> np.ndarray:
    """``(n, 4)`` boxes ``y0, x0, y1, x1`` of labels ``1..n`` (0 = background)."""
    ys, xs = np.nonzero(labels)
    lab = labels[ys, xs] - 1
    box = np.empty((n, 4), np.int64)
    box[:, :2] = np.iinfo(np.int64).max
    box[:, 2:] = -1
    np.minimum.at(box[:, 0], lab, ys)
    np.minimum.at(box[:, 1], lab, xs)
    np.maximum.at(box[:, 2], lab, ys + 1)
    np.maximum.at(box[:, 3], lab, xs + 1)
    return box


class InstanceBank:
    """Instance crops to paste into label maps.

    Args:
        items: The instances.
        vocabulary: Name of the vocabulary whose ids the items use (checked by ``paste``
            against the map's vocabulary), or ``None`` when unknown.

    """

    def __init__(self, items: Iterable[BankItem] = (), vocabulary: str | None = None):
        self.items: list[BankItem] = list(items)
        self.vocabulary = vocabulary

    # ------------------------------------------------------------------ building
    @classmethod
    def from_labelmaps(
        cls,
        labelmaps: Iterable[LabelMap],
        classes: Sequence[int | str] | int | str | None = None,
        min_pixels: int = 64,
        max_items: int | None = None,
        vocab: Vocabulary | None = None,
        skip_truncated: bool = True,
    ) -> InstanceBank:
        """Cut the instances out of label maps.

        Args:
            labelmaps: The maps (read once, in order).
            classes: Class ids (or names, with ``vocab``) to keep; ``None``: the thing
                classes of ``vocab``, or every class without one.
            min_pixels: Smallest instance kept, in pixels.
            max_items: Stop after this many instances (``None``: no limit).
            vocab: The maps' vocabulary (names, thing classes, recorded in the bank).
            skip_truncated: Leave out instances touching the map border.

        Returns:
            The bank, items in map order then ascending instance id.

        """
        wanted = _class_ids(classes, vocab)
        bank = cls([], None if vocab is None else vocab.name)
        for lm in labelmaps:
            if max_items is not None and len(bank) >= max_items:
                break
            for item in _instances_of(lm, wanted, min_pixels, skip_truncated, vocab):
                if max_items is not None and len(bank) >= max_items:
                    break
                bank.items.append(item)
        return bank

    @classmethod
    def from_source(
        cls,
        source: Any,
        classes: Sequence[int | str] | int | str | None = None,
        min_pixels: int = 64,
        max_items: int | None = None,
        limit: int | None = None,
        skip_truncated: bool = True,
    ) -> InstanceBank:
        """Build a bank from a :class:`~sisgen.sources.Source` (its vocabulary included).

        Samples that fail to load are skipped.

        Args:
            source: The source.
            classes: See :meth:`from_labelmaps`.
            min_pixels: See :meth:`from_labelmaps`.
            max_items: See :meth:`from_labelmaps`.
            limit: Read at most this many samples (``None``: all).
            skip_truncated: See :meth:`from_labelmaps`.

        """
        n = len(source) if limit is None else min(limit, len(source))

        def maps() -> Iterator[LabelMap]:
            for i in range(n):
                try:
                    yield source.load(i)
                except SisgenInputError:
                    continue

        return cls.from_labelmaps(maps(), classes, min_pixels, max_items,
                                  vocab=source.vocabulary, skip_truncated=skip_truncated)

    # ------------------------------------------------------------------ access
    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> BankItem:
        return self.items[index]

    def __iter__(self) -> Iterator[BankItem]:
        return iter(self.items)

    def classes(self) -> list[int]:
        """The class ids present, ascending."""
        return sorted({it.class_id for it in self.items})

    def counts(self) -> dict[int, int]:
        """``{class_id: number of items}``."""
        out: dict[int, int] = {}
        for it in self.items:
            out[it.class_id] = out.get(it.class_id, 0) + 1
        return dict(sorted(out.items()))

    def indices(self, class_ids: Iterable[int] | None = None) -> list[int]:
        """Positions of the items of ``class_ids`` (``None``: all), ascending."""
        if class_ids is None:
            return list(range(len(self.items)))
        keep = set(class_ids)
        return [i for i, it in enumerate(self.items) if it.class_id in keep]

    def digest(self) -> str:
        """A content hash of the items (class, origin, box and mask of each, in order).

        Two banks with the same digest paste the same instances for the same seeds; a run
        records it so a manifest says exactly which bank its ``paste`` steps drew from.
        """
        h = hashlib.sha256(str(self.vocabulary).encode())
        for it in self.items:
            h.update(json.dumps([int(it.class_id), str(it.source_id),
                                 [int(v) for v in it.bbox], [int(v) for v in it.source_shape],
                                 int(it.instance_id)]).encode())
            h.update(np.packbits(it.mask).tobytes() + str(it.mask.shape).encode())
        return h.hexdigest()[:16]

    def __repr__(self) -> str:
        return (f"InstanceBank(n={len(self)}, classes={self.counts()}, "
                f"vocabulary={self.vocabulary!r})")

    # ------------------------------------------------------------------ files
    def save(self, path: str | os.PathLike) -> None:
        """Write the bank to ``path`` (a compressed ``.npz``; written atomically).

        The file holds ``bits`` (all masks, row-major, concatenated and bit-packed) and
        ``index`` (UTF-8 JSON: format, version, vocabulary, and per item ``class_id``,
        ``source_id``, ``instance_id``, ``bbox``, ``source_shape``, ``shape``, ``offset``
        in bits).
        """
        path = Path(path)
        entries: list[dict[str, Any]] = []
        flat: list[np.ndarray] = []
        offset = 0
        for it in self.items:
            m = np.asarray(it.mask, dtype=bool)
            entries.append({
                "class_id": int(it.class_id), "source_id": str(it.source_id),
                "instance_id": int(it.instance_id), "bbox": [int(v) for v in it.bbox],
                "source_shape": [int(v) for v in it.source_shape],
                "shape": [int(m.shape[0]), int(m.shape[1])], "offset": offset,
            })
            flat.append(m.ravel())
            offset += m.size
        bits = np.packbits(np.concatenate(flat)) if flat else np.zeros(0, np.uint8)
        index = {"format": FORMAT, "version": VERSION, "vocabulary": self.vocabulary,
                 "items": entries}
        index_bytes = np.frombuffer(json.dumps(index).encode("utf-8"), dtype=np.uint8)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez_compressed(f, bits=bits, index=index_bytes)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike) -> InstanceBank:
        """Read a bank written by :meth:`save`.

        Raises:
            SisgenInputError: Missing file or not a sisgen instance bank, naming the file.

        """
        src = os.fspath(path)
        if not os.path.isfile(src):
            raise SisgenInputError("instance bank file not found", src)
        try:
            with np.load(src, allow_pickle=False) as z:
                bits = np.asarray(z["bits"], dtype=np.uint8)
                index = json.loads(bytes(np.asarray(z["index"], dtype=np.uint8)).decode("utf-8"))
        except (OSError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as e:
            raise SisgenInputError(f"not a readable instance bank ({e})", src) from e
        if not isinstance(index, dict) or index.get("format") != FORMAT:
            raise SisgenInputError(f"not a sisgen instance bank (format {FORMAT!r} expected)", src)
        if index.get("version") != VERSION:
            raise SisgenInputError(f"unsupported instance bank version {index.get('version')!r}",
                                   src)
        flat = np.unpackbits(bits).astype(bool)
        items = []
        try:
            for e in index["items"]:
                h, w = (int(v) for v in e["shape"])
                off = int(e["offset"])
                if off + h * w > flat.size:
                    raise ValueError("mask data truncated")
                items.append(BankItem(
                    class_id=int(e["class_id"]),
                    mask=flat[off:off + h * w].reshape(h, w).copy(),
                    source_id=str(e["source_id"]),
                    bbox=tuple(int(v) for v in e["bbox"]),
                    source_shape=tuple(int(v) for v in e["source_shape"]),
                    instance_id=int(e.get("instance_id", 0)),
                ))
        except (KeyError, TypeError, ValueError) as err:
            raise SisgenInputError(f"corrupt instance bank index ({err})", src) from err
        return cls(items, index.get("vocabulary"))


def _instances_of(
    lm: LabelMap, wanted: set[int] | None, min_pixels: int, skip_truncated: bool,
    vocab: Vocabulary | None,
) -> Iterator[BankItem]:
    sem = lm.semantic
    H, W = lm.shape
    if lm.instance is not None:
        ids, inverse = np.unique(lm.instance, return_inverse=True)
        labels = inverse.reshape(H, W).astype(np.int64)
        if ids[0] == 0:
            ids = ids[1:]
        else:  # no zero: shift so that label 0 stays background
            labels = labels + 1
        groups = [(labels, ids, None)]
    elif vocab is not None:
        groups = []
        for c in sorted(set(vocab.thing_ids) if wanted is None else wanted & set(vocab.thing_ids)):
            m = (sem == c).astype(np.uint8)
            if not m.any():
                continue
            n, comp = cv2.connectedComponents(m, connectivity=8, ltype=cv2.CV_32S)
            groups.append((comp.astype(np.int64), np.zeros(n - 1, np.int64), c))
    else:
        return
    for labels, ids, fixed_class in groups:
        n = len(ids)
        if n == 0:
            continue
        boxes = _bboxes(labels, n)
        for k in range(n):
            y0, x0, y1, x1 = (int(v) for v in boxes[k])
            if y1 < 0:
                continue
            lab = labels[y0:y1, x0:x1] == k + 1
            s = sem[y0:y1, x0:x1]
            if fixed_class is None:
                cls_id = int(np.bincount(s[lab].astype(np.int64)).argmax())
                lab = lab & (s == cls_id)
            else:
                cls_id = fixed_class
            if wanted is not None and cls_id not in wanted:
                continue
            if int(lab.sum()) < min_pixels:
                continue
            if skip_truncated and (y0 == 0 or x0 == 0 or y1 == H or x1 == W):
                continue
            yield BankItem(cls_id, lab.copy(), lm.id, (y0, x0, y1, x1), (H, W), int(ids[k]))


_CACHE: dict[tuple[str, int, int], InstanceBank] = {}


def load_bank_cached(path: str | os.PathLike) -> InstanceBank:
    """:meth:`InstanceBank.load` once per file version (path, mtime and size) per process."""
    src = os.path.realpath(os.fspath(path))
    if not os.path.isfile(src):
        raise SisgenInputError("instance bank file not found", os.fspath(path))
    st = os.stat(src)
    key = (src, st.st_mtime_ns, st.st_size)
    bank = _CACHE.get(key)
    if bank is None:
        for old in [k for k in _CACHE if k[0] == src]:
            del _CACHE[old]
        bank = _CACHE[key] = InstanceBank.load(src)
    return bank
