"""The writer protocol: generated images plus their labels, as a dataset on disk.

A writer is opened on a root folder and a vocabulary, gets one ``(name, image, labelmap)``
per :meth:`Writer.write` and returns the paths it wrote (relative to the root, with ``/``
separators) for the run's manifest. :meth:`Writer.close` finalises whatever needs every
sample (COCO JSON files); it is idempotent and runs on leaving a ``with`` block. Every file
is written atomically (:mod:`sisgen.io`), so a killed run never leaves a half-written file
under its final name.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import SisgenInputError
from ..io import atomic_write_bytes, encode_image
from ..labelmap import LabelMap
from ..registry import Registry
from ..vocab import Vocabulary

#: Writer classes by kind, for :func:`sisgen.writers.get_writer`.
WRITERS: Registry[type[Writer]] = Registry("writer kind")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def register_writer(kind: str) -> Callable[[type[Writer]], type[Writer]]:
    """Register a :class:`Writer` subclass under ``kind`` for ``get_writer``.

    Args:
        kind: The writer name (``cityscapes``, ``coco``, ...).

    Returns:
        A class decorator.

    Raises:
        ValueError: The kind is already taken.

    """
    return WRITERS.register(kind, attr="kind")


def safe_stem(name: str, max_len: int = 150) -> str:
    """Turn a sample name into a safe file stem.

    Path separators and every character outside ``A-Z a-z 0-9 . _ -`` become ``_``;
    leading dots are dropped (no hidden files, no ``..``); over-long names are cut.

    Args:
        name: The sample name (often a source file name or id).
        max_len: Longest stem kept.

    Returns:
        A non-empty stem (``sample`` when nothing usable is left).

    """
    stem = _UNSAFE.sub("_", str(name)).lstrip(".")
    stem = stem[:max_len].rstrip(".")
    return stem or "sample"


def pixel_kinds(semantic: np.ndarray, vocabulary: Vocabulary
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a label map into thing and stuff pixels.

    Returns:
        ``(sem, thing_px, stuff_px)``: the ids as int64 and the masks of pixels whose class
        is a thing / a stuff class of ``vocabulary`` (ignore and unknown ids are in neither).
    """
    sem = semantic.astype(np.int64)
    inside = (sem >= 0) & (sem < 256)
    sem_c = np.clip(sem, 0, 255)
    thing_px = inside & vocabulary.thing_table()[sem_c]
    return sem, thing_px, inside & vocabulary.valid_table()[sem_c] & ~thing_px


def instance_masks(sem: np.ndarray, instance: np.ndarray | None, thing_px: np.ndarray
                   ) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(class id, mask)`` per thing instance, in (instance id, class) order.

    An instance id spanning two classes counts as two instances; thing pixels with
    instance 0 (crowds) are not yielded.
    """
    if instance is None:
        return
    group, classes = _instance_groups(sem, instance, thing_px)
    for g, cls in enumerate(classes):
        yield int(cls), group == g + 1


def _instance_groups(sem: np.ndarray, instance: np.ndarray, thing_px: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Number the (instance id, class) pairs of thing pixels 1..K in sorted order.

    Returns:
        ``(group, classes)``: an ``H×W`` int64 map (0 outside every instance) and the
        class of each group. The pairs are keyed ``instance * 256 + class`` (classes are
        below 256) and numbered by :func:`unique_runs`: one sorted key per run of equal
        keys, not one per pixel.
    """
    sel = thing_px & (instance != 0)
    key = instance[sel].astype(np.int64) * 256 + sem[sel]
    uniq, inverse, _ = unique_runs(key)
    group = np.zeros(sem.shape, np.int64)
    group[sel] = inverse + 1
    return group, uniq % 256


def unique_runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``np.unique(values, return_index=True, return_inverse=True)``, sorting runs, not items.

    The pixels of one instance come in long runs of equal keys (row after row), so
    sorting one key per run is a fraction of the work of sorting every pixel's key.

    Args:
        values: A 1-D integer array.

    Returns:
        ``(unique, inverse, first)``: the sorted distinct values, each item's position in
        ``unique``, and the index of each distinct value's first occurrence.
    """
    values = np.asarray(values).reshape(-1)
    n = values.size
    if n == 0:
        empty = np.zeros(0, np.intp)
        return values.copy(), empty, empty
    starts = np.flatnonzero(np.concatenate(([True], values[1:] != values[:-1])))
    uniq, first_run, inverse_run = np.unique(values[starts], return_index=True,
                                             return_inverse=True)
    inverse = np.repeat(inverse_run.reshape(-1), np.diff(np.append(starts, n)))
    return uniq, inverse, starts[first_run]


@dataclass
class Segments:
    """Every annotated segment of one image, as one id map.

    Segments are numbered ``1..K`` in the order COCO files list them: one per thing
    instance in (instance id, class) order, then one crowd region per thing class whose
    pixels have no instance (by class), then one per stuff class present (by class).
    Ignored and unknown ids belong to no segment (0).

    Attributes:
        ids: ``H×W`` int32 segment ids, 0 = void.
        classes: ``[K]`` int64 class id of each segment.
        crowd: ``[K]`` bool, the crowd regions.
        thing: ``[K]`` bool, thing (instance or crowd) segments as opposed to stuff.
    """

    ids: np.ndarray
    classes: np.ndarray
    crowd: np.ndarray
    thing: np.ndarray

    def __len__(self) -> int:
        return len(self.classes)


def class_ids_u8(semantic: np.ndarray) -> np.ndarray:
    """``semantic`` as uint8 for 256-entry lookups; ids outside 0..255 become 255.

    No vocabulary class has the id 255 (the ignore id), so an unknown id stays unknown.
    """
    semantic = np.asarray(semantic)
    if semantic.dtype == np.uint8:
        return np.ascontiguousarray(semantic)
    inside = (semantic >= 0) & (semantic < 256)
    return np.where(inside, semantic, 255).astype(np.uint8)


def segments(semantic: np.ndarray, instance: np.ndarray | None, vocabulary: Vocabulary
             ) -> Segments:
    """Split a label map into its COCO segments (see :class:`Segments`), in one pass.

    Thing pixels with an instance are grouped by :func:`unique_runs`; which crowd and
    stuff classes are present follows from two class histograms (all pixels, instance
    pixels); one 256-entry table then gives every other pixel its segment id.
    """
    sem = class_ids_u8(semantic)
    thing = vocabulary.thing_table()
    total = np.bincount(sem.ravel(), minlength=256)
    with_instance = np.zeros(256, np.int64)
    inst_classes = np.zeros(0, np.int64)
    sel = None
    if instance is not None:
        sel = cv2.LUT(sem, thing.astype(np.uint8)).view(bool) & (instance != 0)
        sem_sel = sem[sel]
        key = instance[sel].astype(np.int64) * 256 + sem_sel
        uniq, inverse, _ = unique_runs(key)
        inst_classes = uniq % 256
        with_instance = np.bincount(sem_sel, minlength=256)
    crowd_classes = np.flatnonzero(thing & (total > with_instance))
    stuff_classes = np.flatnonzero(vocabulary.stuff_table() & (total > 0))
    n_inst, n_crowd, n_stuff = len(inst_classes), len(crowd_classes), len(stuff_classes)
    number = np.zeros(256, np.int32)
    number[crowd_classes] = np.arange(n_inst + 1, n_inst + n_crowd + 1)
    number[stuff_classes] = np.arange(n_inst + n_crowd + 1, n_inst + n_crowd + n_stuff + 1)
    ids = cv2.LUT(sem, number)
    if n_inst:
        ids[sel] = inverse + 1
    return Segments(
        ids=ids,
        classes=np.concatenate([inst_classes, crowd_classes, stuff_classes]).astype(np.int64),
        crowd=np.repeat([False, True, False], [n_inst, n_crowd, n_stuff]),
        thing=np.repeat([True, True, False], [n_inst, n_crowd, n_stuff]),
    )


@dataclass
class SegmentRuns:
    """The column-major runs of every segment of an id map (see :func:`segment_runs`).

    COCO run-length encoding, areas and boxes all follow from these runs, so no segment
    needs a full-frame mask of its own, and areas and boxes of all segments are a few
    array operations, with no loop over segments.

    Attributes:
        starts: Start of every run in the column-major (Fortran-order) pixel sequence,
            grouped by segment (1, 2, ...), ascending within a segment.
        lengths: The runs' lengths.
        bounds: ``[K + 1]`` offsets: segment ``k + 1`` owns runs ``bounds[k]:bounds[k + 1]``.
        height: The map's height.
        width: The map's width.
    """

    starts: np.ndarray
    lengths: np.ndarray
    bounds: np.ndarray
    height: int
    width: int

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def runs(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(starts, lengths)`` of segment ``k + 1`` (``k`` counts from 0)."""
        a, b = self.bounds[k], self.bounds[k + 1]
        return self.starts[a:b], self.lengths[a:b]

    def areas(self) -> np.ndarray:
        """``[K]`` int64 pixel counts."""
        total = np.concatenate(([0], np.cumsum(self.lengths)))
        return total[self.bounds[1:]] - total[self.bounds[:-1]]

    def boxes(self) -> np.ndarray:
        """``[K, 4]`` int64 boxes ``[x, y, w, h]`` (zeros for an empty segment).

        A run that continues into the next column covers the bottom row of one column and
        the top row of the next, so it spans the full height in the box.
        """
        h = self.height
        last = self.starts + self.lengths - 1
        x0, x1 = self.starts // h, last // h
        wraps = x1 > x0
        top = np.where(wraps, 0, self.starts % h)
        bottom = np.where(wraps, h - 1, last % h)
        left, right = self._reduce(np.minimum, x0), self._reduce(np.maximum, x1)
        y0, y1 = self._reduce(np.minimum, top), self._reduce(np.maximum, bottom)
        box = np.stack([left, y0, right - left + 1, y1 - y0 + 1], axis=1)
        box[self.bounds[1:] == self.bounds[:-1]] = 0
        return box

    def _reduce(self, ufunc: np.ufunc, values: np.ndarray) -> np.ndarray:
        """``ufunc`` over each segment's runs (0 for an empty segment)."""
        out = np.zeros(len(self), np.int64)
        full = self.bounds[1:] > self.bounds[:-1]
        if full.any():
            out[full] = ufunc.reduceat(values, self.bounds[:-1][full])
        return out


def segment_runs(ids: np.ndarray, count: int) -> SegmentRuns:
    """The column-major runs of each segment of an id map, in one pass over the pixels.

    Args:
        ids: ``H×W`` segment ids (0 = void).
        count: The number of segments ``K`` (ids ``1..K``).

    Returns:
        The :class:`SegmentRuns` of segments ``1..K``.
    """
    h, w = ids.shape
    if ids.dtype in (np.int32, np.uint16, np.int16, np.uint8) and ids.size:
        flat = cv2.transpose(np.ascontiguousarray(ids)).ravel()  # ~15x numpy's F-order ravel
    else:
        flat = ids.ravel(order="F")
    n = flat.size
    if n == 0:
        none = np.zeros(0, np.int64)
        return SegmentRuns(none, none, np.zeros(count + 1, np.int64), h, w)
    starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
    lengths = np.diff(np.append(starts, n))
    values = flat[starts]
    keep = (values > 0) & (values <= count)
    starts, lengths, values = starts[keep], lengths[keep], values[keep]
    order = np.argsort(values, kind="stable")
    bounds = np.searchsorted(values[order], np.arange(1, count + 2))
    return SegmentRuns(starts[order].astype(np.int64), lengths[order].astype(np.int64),
                       bounds.astype(np.int64), h, w)


IMAGE_FORMATS = ("jpg", "png")


def check_image_format(image_format: str) -> str:
    """Normalise an ``image_format`` option to ``jpg`` or ``png``.

    Args:
        image_format: ``jpg``, ``jpeg`` or ``png`` (case and a leading dot ignored).

    Returns:
        ``jpg`` or ``png``.

    Raises:
        SisgenInputError: Any other value.

    """
    fmt = str(image_format).lower().lstrip(".")
    fmt = "jpg" if fmt == "jpeg" else fmt
    if fmt not in IMAGE_FORMATS:
        raise SisgenInputError(f"image_format must be 'jpg' or 'png', got {image_format!r}")
    return fmt


class SampleImage:
    """A generated sample that several writers write: each piece of shared work done once.

    The image is encoded at most once per format; the uint8 label PNG of a label map
    (every writer stores the same one) is encoded once; a label map is checked against a
    vocabulary once, by the first writer that asks -- or never, when the run says its
    sample path already checked it (:meth:`mark_checked`).

    Args:
        array: ``H×W×3`` uint8 RGB.
    """

    def __init__(self, array: np.ndarray):
        self.array = np.asarray(array)
        self._encoded: dict[tuple[str, int], bytes] = {}
        self._labels: list[tuple[np.ndarray, bytes]] = []
        self._checked: list[tuple[Vocabulary, np.ndarray]] = []

    def encoded(self, image_format: str, jpeg_quality: int = 95) -> bytes:
        """The image as ``jpg`` or ``png`` bytes (quality only matters for ``jpg``)."""
        key = (image_format, int(jpeg_quality) if image_format == "jpg" else 0)
        if key not in self._encoded:
            self._encoded[key] = encode_image(self.array, f".{image_format}",
                                              jpeg_quality=int(jpeg_quality))
        return self._encoded[key]

    def label_png(self, semantic: np.ndarray) -> bytes:
        """``semantic`` as a single-channel uint8 PNG, encoded once per array."""
        for array, data in self._labels:
            if array is semantic:
                return data
        data = encode_image(semantic.astype(np.uint8, copy=False), ".png")
        self._labels.append((semantic, data))
        return data

    def mark_checked(self, vocabulary: Vocabulary, semantic: np.ndarray) -> None:
        """Record that ``semantic`` holds only ``vocabulary``'s ids (and ignore)."""
        self._checked.append((vocabulary, semantic))

    def check_labels(self, vocabulary: Vocabulary, semantic: np.ndarray, name: str) -> None:
        """:meth:`Vocabulary.validate` ``semantic`` unless it was checked for this sample.

        Raises:
            SisgenInputError: Ids outside the vocabulary, naming the sample.
        """
        for vocab, array in self._checked:
            if array is semantic and (vocab is vocabulary or vocab.ids == vocabulary.ids):
                return
        vocabulary.validate(semantic, name)
        self.mark_checked(vocabulary, semantic)


def write_label_png(path: Path, semantic: np.ndarray, image: np.ndarray | SampleImage
                    ) -> None:
    """Atomically write ``semantic`` as a uint8 label PNG, sharing the sample's encoding.

    Args:
        path: The PNG file.
        semantic: ``H×W`` class ids (0..255).
        image: The sample's :class:`SampleImage` (which encodes the PNG once for every
            writer), or a plain image array (then the PNG is encoded here).
    """
    shared = image if isinstance(image, SampleImage) else SampleImage(image)
    atomic_write_bytes(path, shared.label_png(semantic))


def write_photo(folder: Path, stem: str, image: np.ndarray | SampleImage, image_format: str,
                jpeg_quality: int = 95, suffix: str = "") -> Path:
    """Atomically write ``folder/{stem}{suffix}.{image_format}``; drop the other format's file.

    Removing ``{stem}.png`` when writing ``{stem}.jpg`` (and the reverse) keeps one image per
    sample when a resumed run changes ``image_format``.

    Args:
        folder: The image folder.
        stem: The safe file stem.
        image: ``H×W×3`` uint8 RGB, or a shared :class:`SampleImage`.
        image_format: ``jpg`` or ``png``.
        jpeg_quality: JPEG quality for ``jpg``.
        suffix: Appended to the stem (Cityscapes' ``_leftImg8bit``).

    Returns:
        The written path.

    """
    if not isinstance(image, SampleImage):
        image = SampleImage(image)
    path = folder / f"{stem}{suffix}.{image_format}"
    atomic_write_bytes(path, image.encoded(image_format, jpeg_quality))
    for other in IMAGE_FORMATS:
        if other != image_format:
            (folder / f"{stem}{suffix}.{other}").unlink(missing_ok=True)
    return path


@dataclass
class Written:
    """One sample's files, as :meth:`Writer.write_files` wrote them.

    Attributes:
        name: The sample name.
        paths: ``{role: path relative to the writer's root}``.
        record: What :meth:`Writer.commit` records in the dataset's index (or ``None``).
    """

    name: str
    paths: dict[str, str]
    record: Any = None


class Writer:
    """Base class of dataset writers.

    Args:
        root: The output folder (created when missing).
        vocabulary: The id space of the label maps handed to :meth:`write`.
        part_tag: Suffix of this process's part/metadata-fragment files (``.shard-0-of-4``),
            so that shards of one run write into one folder without sharing an append-only
            file; :meth:`close` of any writer builds its metadata from every fragment.
        **options: Kind-specific options; unknown ones raise ``SisgenInputError``.

    Attributes:
        root: The output folder.
        vocabulary: The vocabulary.
        kind: The registered kind name.
        closed: Whether :meth:`close` has run.

    """

    kind: str = "writer"

    def __init__(self, root: str | os.PathLike, vocabulary: Vocabulary, *, part_tag: str = "",
                 **options: Any):
        if options:
            raise SisgenInputError(
                f"unknown option(s) for the {self.kind} writer: {', '.join(sorted(options))}"
            )
        self.root = Path(root)
        self.vocabulary = vocabulary
        self.part_tag = safe_stem(part_tag) if part_tag else ""
        self.closed = False
        self.root.mkdir(parents=True, exist_ok=True)

    # ------------------------------------------------------------------ protocol
    def write(self, name: str, image: np.ndarray | SampleImage, labelmap: LabelMap
              ) -> dict[str, str]:
        """Write one sample: :meth:`write_files`, then :meth:`commit`.

        Args:
            name: The sample name; sanitised to a safe file stem (:func:`safe_stem`).
            image: The generated ``H×W×3`` uint8 RGB image (or a :class:`SampleImage`
                that several writers share, so it is encoded once per format).
            labelmap: Its labels, the same ``H×W``.

        Returns:
            ``{role: path relative to root}`` of every file written.

        """
        return self.commit(self.write_files(name, image, labelmap))

    def write_files(self, name: str, image: np.ndarray | SampleImage, labelmap: LabelMap
                    ) -> Written:
        """Encode and atomically write a sample's files; return what :meth:`commit` needs.

        Touches nothing but the sample's own files, so samples can be written in parallel
        (threads or processes, each with a pickled copy of the writer) with no lock.
        """
        raise NotImplementedError

    def commit(self, written: Written) -> dict[str, str]:
        """Record a written sample in the dataset's shared files (in sample order).

        The default has nothing to record. Writers with an append-only index (the COCO
        part file) append here; a run calls it in sample order from one thread, so the
        index is the same however the files were written.

        Returns:
            The sample's ``{role: path}``.
        """
        return written.paths

    def recover(self, names: set[str]) -> None:
        """Forget index records of samples a resumed run will write again.

        ``names`` are the sample names the run's manifest records as written; index
        records of any other sample (written by a killed run after its last manifest
        line) are dropped, so the resumed run's index equals an uninterrupted run's.
        """

    def close(self) -> None:
        """Finalise the dataset (write index files); safe to call more than once."""
        self.closed = True

    # ------------------------------------------------------------------ helpers
    def _check(self, name: str, image: np.ndarray | SampleImage, labelmap: LabelMap) -> str:
        """Validate one sample and return its safe stem."""
        if self.closed:
            raise RuntimeError(f"{self.kind} writer at {self.root} is closed")
        shared = image if isinstance(image, SampleImage) else SampleImage(image)
        array = shared.array
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
            raise SisgenInputError(
                f"image must be an H×W×3 uint8 RGB array, got {array.dtype} {array.shape}",
                name,
            )
        if array.shape[:2] != labelmap.shape:
            raise SisgenInputError(
                f"image size {array.shape[:2]} differs from label map size {labelmap.shape}",
                name,
            )
        shared.check_labels(self.vocabulary, labelmap.semantic, name)
        return safe_stem(name)

    def _rel(self, path: str | os.PathLike) -> str:
        """``path`` relative to the root, ``/``-separated (string work for paths built on it)."""
        text, root = os.fspath(path), os.fspath(self.root) + os.sep
        if text.startswith(root):
            rel = text[len(root):]
            return rel if os.sep == "/" else rel.replace(os.sep, "/")
        return Path(path).relative_to(self.root).as_posix()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} root={self.root} vocab={self.vocabulary.name}>"
