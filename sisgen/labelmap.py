"""The one-sample data model: a semantic label map with optional instances."""

from __future__ import annotations

import copy
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
            copy.deepcopy(self.meta),
        )

    def edges(self) -> np.ndarray:
        """The instance-edge map of this sample (see :func:`instance_edges`)."""
        return instance_edges(self.instance if self.instance is not None else self.semantic)

    def resized(self, size: tuple[int, int]) -> LabelMap:
        """Nearest-neighbour resize to ``(H, W)``; class ids are never interpolated."""
        import cv2

        h, w = size
        if (h, w) == self.shape:
            return self.copy()

        def _resize(a: np.ndarray) -> np.ndarray:
            src = a.astype(np.int32) if a.dtype not in (np.uint8, np.uint16, np.int32) else a
            if src.dtype == np.int32:  # cv2 resizes int32 only through float; ids stay exact
                return cv2.resize(src.astype(np.float32), (w, h), interpolation=cv2.INTER_NEAREST
                                  ).astype(np.int32)
            return cv2.resize(src, (w, h), interpolation=cv2.INTER_NEAREST)

        meta = copy.deepcopy(self.meta)
        if meta.get(NOISE_MASK_KEY) is not None:  # noise-region marks follow the labels
            meta[NOISE_MASK_KEY] = _resize(np.asarray(meta[NOISE_MASK_KEY], np.uint8)
                                           ).astype(bool)
        return LabelMap(
            _resize(self.semantic).astype(self.semantic.dtype),
            None if self.instance is None else _resize(self.instance),
            meta,
        )


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
