"""The one-sample data model: a semantic label map with optional instances."""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import SisgenInputError

IGNORE_ID = 255

# ``LabelMap.meta`` keys that edits, photo editing and engines pass between each other.
#: Noise-region marks (bool ``H×W``, written by ``resample_noise``; follow the labels).
NOISE_MASK_KEY = "noise_mask"
#: Each pixel's index in the source photo (int32 ``H×W``; moved by geometric edits).
SOURCE_PIXEL_KEY = "source_pixel"
#: The aligned photo (uint8 ``H×W×3``) and the hole to re-synthesize (bool ``H×W``).
PHOTO_KEY, HOLE_KEY = "photo", "hole"
#: The position of the map in its source (set by the sample path).
SOURCE_INDEX_KEY = "source_index"


def copy_meta(value: Any) -> Any:
    """A deep copy of a ``meta`` value, fast for the plain data meta holds.

    Dicts, lists and tuples are rebuilt, strings and numbers shared (they are immutable),
    arrays copied; anything else (subclasses included) goes through :func:`copy.deepcopy`.
    Several times faster than ``deepcopy`` on the provenance and edit records every
    sample carries.
    """
    kind = type(value)
    if kind in _IMMUTABLE:
        return value
    if kind is dict:
        return {k: copy_meta(v) for k, v in value.items()}
    if kind is list:
        return [copy_meta(v) for v in value]
    if kind is tuple:
        return tuple(copy_meta(v) for v in value)
    if kind is np.ndarray:
        return value.copy()
    return copy.deepcopy(value)  # subclasses (OrderedDict, named tuples) keep their type


_IMMUTABLE = frozenset({str, int, float, bool, type(None), bytes})


@dataclass
class LabelMap:
    """One label map: class ids, optional instance ids and provenance.

    Attributes:
        semantic: ``H×W`` integer array of class ids in the vocabulary's id space;
            255 marks ignored/unlabeled pixels.
        instance: ``H×W`` int32 array of instance ids (0 = no instance) or ``None``. Ids are
            unique within the map; Cityscapes-style ``class*1000+k`` ids are kept as they are.
        meta: Provenance; always has ``id`` (a unique, file-system-safe sample name) and
            usually ``source``, ``file`` and ``size`` (original ``(H, W)``).
    """

    semantic: np.ndarray
    instance: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.semantic = np.asarray(self.semantic)
        if self.semantic.ndim != 2 or not np.issubdtype(self.semantic.dtype, np.integer):
            raise SisgenInputError(
                f"semantic map must be a 2-D integer array, got {self.semantic.dtype} "
                f"{self.semantic.shape}",
                self.meta.get("file"),
            )
        if self.instance is not None:
            self.instance = np.asarray(self.instance)
            if self.instance.shape != self.semantic.shape:
                raise SisgenInputError(
                    f"label/instance size mismatch: semantic {self.semantic.shape} vs instance "
                    f"{self.instance.shape}",
                    self.meta.get("instance_file", self.meta.get("file")),
                )
            self.instance = self.instance.astype(np.int32, copy=False)
        self.meta.setdefault("id", "sample")

    @property
    def id(self) -> str:
        """The sample's unique name."""
        return str(self.meta["id"])

    @property
    def shape(self) -> tuple[int, int]:
        """``(H, W)``."""
        return int(self.semantic.shape[0]), int(self.semantic.shape[1])

    def copy(self) -> LabelMap:
        """A deep copy (arrays and meta)."""
        return LabelMap(
            self.semantic.copy(),
            None if self.instance is None else self.instance.copy(),
            copy_meta(self.meta),
        )

    def shallow_copy(self) -> LabelMap:
        """A new map on the same arrays, with a copy of the meta (copy on write: edits)."""
        return LabelMap(self.semantic, self.instance, copy_meta(self.meta))

    def edges(self) -> np.ndarray:
        """The instance-edge map of this sample (see :func:`instance_edges`)."""
        return instance_edges(self.instance if self.instance is not None else self.semantic)

    def resized(self, size: tuple[int, int]) -> LabelMap:
        """Nearest-neighbour resize to ``(H, W)`` (:func:`resize_nearest`); ids never blend.

        Noise-region marks (``meta[NOISE_MASK_KEY]``) follow the labels.
        """
        size = (int(size[0]), int(size[1]))
        if size == self.shape:
            return self.copy()
        meta = copy_meta(self.meta)
        if meta.get(NOISE_MASK_KEY) is not None:
            meta[NOISE_MASK_KEY] = resize_nearest(np.asarray(meta[NOISE_MASK_KEY], bool), size)
        return LabelMap(
            resize_nearest(self.semantic, size),
            None if self.instance is None else resize_nearest(self.instance, size),
            meta,
        )


@functools.lru_cache(maxsize=256)
def nearest_indices(src: int, dst: int) -> np.ndarray:
    """Source index of each of ``dst`` output pixels for a nearest-neighbour resize.

    Pixel centres aligned and ties rounded exactly as PIL's ``NEAREST`` (the official SPADE,
    pix2pixHD and OASIS pipelines resize label maps with it): OpenCV's
    ``INTER_NEAREST_EXACT`` applied to an index ramp (a plain ``floor((x + 0.5) * src /
    dst)`` differs on some sizes). Read-only; cached per ``(src, dst)``.
    """
    if src == dst:
        idx = np.arange(dst, dtype=np.intp)
    else:
        import cv2

        ramp = np.arange(src, dtype=np.float32)[None]  # exact below 2**24
        idx = cv2.resize(ramp, (dst, 1), interpolation=cv2.INTER_NEAREST_EXACT)[0]
        idx = idx.astype(np.intp)
    idx.flags.writeable = False
    return idx


def resize_nearest(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an ``H×W[×C]`` array to ``size`` (:func:`nearest_indices`).

    The one resize of label, instance and mask maps in sisgen -- generation, training
    data, edits and the editor -- so a map resized anywhere has the same pixels. Any
    dtype; values are copied, never interpolated.
    """
    rows = nearest_indices(a.shape[0], int(size[0]))
    cols = nearest_indices(a.shape[1], int(size[1]))
    return a.take(rows, axis=0).take(cols, axis=1)  # two 1-D gathers: ~3x a 2-D fancy index


def instance_edges(instance: np.ndarray) -> np.ndarray:
    """Boundary map of an instance (or semantic) id map, as SPADE/pix2pixHD define it.

    A pixel is an edge when any 4-neighbour has a different id.

    Args:
        instance: ``H×W`` integer map (``...×H×W`` batched also works).

    Returns:
        A float32 array of the same shape with 1.0 on edges and 0.0 elsewhere.
    """
    inst = np.asarray(instance)
    edge = np.zeros(inst.shape, dtype=bool)
    dx = inst[..., :, 1:] != inst[..., :, :-1]
    dy = inst[..., 1:, :] != inst[..., :-1, :]
    edge[..., :, 1:] |= dx
    edge[..., :, :-1] |= dx
    edge[..., 1:, :] |= dy
    edge[..., :-1, :] |= dy
    return edge.astype(np.float32)
