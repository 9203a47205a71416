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
        class of each group. One 1-D sort of ``instance * 256 + class`` (classes are
        below 256), not a row-wise ``unique`` over pairs.
    """
    inst = instance.astype(np.int64)
    sel = thing_px & (inst != 0)
    key = inst[sel] * 256 + sem[sel]
    uniq, inverse = np.unique(key, return_inverse=True)
    group = np.zeros(sem.shape, np.int64)
    group[sel] = inverse.reshape(-1) + 1
    return group, uniq % 256


@dataclass
class Segments:
    """Every annotated segment of one image, as one id map.

    Segments are numbered ``1..K`` in the order COCO files list them: one per thing
    instance in (instance id, class) order, then one crowd region per thing class whose
    pixels have no instance (by class), then one per stuff class present (by class).
    Ignored and unknown ids belong to no segment (0).

    Attributes:
        ids: ``H×W`` int64 segment ids, 0 = void.
        classes: ``[K]`` class id of each segment.
        crowd: ``[K]`` bool, the crowd regions.
        thing: ``[K]`` bool, thing (instance or crowd) segments as opposed to stuff.
    """

    ids: np.ndarray
    classes: np.ndarray
    crowd: np.ndarray
    thing: np.ndarray

    def __len__(self) -> int:
        return len(self.classes)


def segments(semantic: np.ndarray, instance: np.ndarray | None, vocabulary: Vocabulary
             ) -> Segments:
    """Split a label map into its COCO segments (see :class:`Segments`), in one pass."""
    sem, thing_px, stuff_px = pixel_kinds(semantic, vocabulary)
    sem_c = np.clip(sem, 0, 255)
    if instance is not None:
        ids, inst_classes = _instance_groups(sem, instance, thing_px)
        crowd_px = thing_px & (ids == 0)
    else:
        ids, inst_classes = np.zeros(sem.shape, np.int64), np.zeros(0, np.int64)
        crowd_px = thing_px
    parts = [inst_classes]
    for px in (crowd_px, stuff_px):
        present = np.flatnonzero(np.bincount(sem_c[px], minlength=256))
        number = np.zeros(256, np.int64)
        number[present] = np.arange(1, len(present) + 1) + sum(len(p) for p in parts)
        ids[px] = number[sem_c[px]]
        parts.append(present)
    n_inst, n_crowd, n_stuff = (len(p) for p in parts)
    return Segments(
        ids=ids,
        classes=np.concatenate(parts).astype(np.int64),
        crowd=np.repeat([False, True, False], [n_inst, n_crowd, n_stuff]),
        thing=np.repeat([True, True, False], [n_inst, n_crowd, n_stuff]),
    )


def segment_runs(ids: np.ndarray, count: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The column-major runs of each segment of an id map, in one pass over the pixels.

    COCO run-length encoding, areas and boxes all follow from these runs, so no segment
    needs a full-frame mask of its own.

    Args:
        ids: ``H×W`` segment ids (0 = void).
        count: The number of segments ``K`` (ids ``1..K``).

    Returns:
        For each segment ``1..K``: ``(starts, lengths)`` of its runs in the column-major
        (Fortran-order) pixel sequence, ascending.
    """
    flat = ids.ravel(order="F")
    n = flat.size
    if n == 0:
        return [(np.zeros(0, np.int64), np.zeros(0, np.int64)) for _ in range(count)]
    starts = np.flatnonzero(np.concatenate(([True], flat[1:] != flat[:-1])))
    lengths = np.diff(np.append(starts, n))
    values = flat[starts]
    order = np.argsort(values, kind="stable")
    bounds = np.searchsorted(values[order], np.arange(1, count + 2))
    return [(starts[order[bounds[k]:bounds[k + 1]]], lengths[order[bounds[k]:bounds[k + 1]]])
            for k in range(count)]


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
    """A generated image that several writers write: encoded at most once per format.

    Args:
        array: ``H×W×3`` uint8 RGB.
    """

    def __init__(self, array: np.ndarray):
        self.array = np.asarray(array)
        self._encoded: dict[tuple[str, int], bytes] = {}

    def encoded(self, image_format: str, jpeg_quality: int = 95) -> bytes:
        """The image as ``jpg`` or ``png`` bytes (quality only matters for ``jpg``)."""
        key = (image_format, int(jpeg_quality) if image_format == "jpg" else 0)
        if key not in self._encoded:
            self._encoded[key] = encode_image(self.array, f".{image_format}",
                                              jpeg_quality=int(jpeg_quality))
        return self._encoded[key]


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
        image = image.array if isinstance(image, SampleImage) else np.asarray(image)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise SisgenInputError(
                f"image must be an H×W×3 uint8 RGB array, got {image.dtype} {image.shape}",
                name,
            )
        if image.shape[:2] != labelmap.shape:
            raise SisgenInputError(
                f"image size {image.shape[:2]} differs from label map size {labelmap.shape}",
                name,
            )
        self.vocabulary.validate(labelmap.semantic, name)
        return safe_stem(name)

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def __enter__(self) -> Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.kind} root={self.root} vocab={self.vocabulary.name}>"
