"""A label-preserving augmentation: swap the real photo for a synthetic one.

:class:`SyntheticSwap` slots into a segmentation training pipeline as a transform on
``(image, label)`` pairs: with probability ``p`` the photo is replaced by an image the
generator synthesizes from the pair's own label map, so the annotation stays valid.
"""

from __future__ import annotations

import os
from typing import Any

import cv2
import numpy as np
from torch.utils.data import get_worker_info

from sisgen.labelmap import LabelMap

from .dataset import GeneratorSpec, LazyGenerator

KEEPS = ("label_size", "model_size")


def resize_image(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an ``H×W×3`` image to ``(H, W)`` (area when shrinking, bilinear otherwise)."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    shrink = h * w < image.shape[0] * image.shape[1]
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


class SyntheticSwap:
    """With probability ``p``, replace a real image by one synthesized from its label map.

    The label map is never edited: the synthetic image is generated from it (resized
    nearest to the model resolution). With ``keep="label_size"`` the synthetic image is
    resized back to the label's size, so the label is returned unchanged; with
    ``keep="model_size"`` everything returned is at the model resolution (the label and
    instance maps resized nearest; an image that is not swapped is resized too), so all
    outputs have one size.

    Randomness: one ``numpy.random.Generator`` draws both the swap decision and the noise
    seed. Pass ``seed`` (or ``rng``) for a reproducible stream, or a per-call ``seed`` to
    make one sample's outcome a function of that seed alone. In a DataLoader worker the
    stream is re-keyed by the worker id on first use, so workers do not repeat each other.

    Args:
        generator: A model path, a zero-argument factory, or a Generator (see
            :class:`~sisgen.integrations.dataset.LazyGenerator`); opened lazily per process.
        p: Swap probability.
        keep: ``"label_size"`` or ``"model_size"``.
        seed: Seed of the stream (ignored when ``rng`` is given).
        rng: A generator to draw from.
        load_kwargs: Extra arguments for ``sisgen.load``.

    Attributes:
        last_swapped: Whether the latest call swapped.
    """

    def __init__(self, generator: GeneratorSpec, p: float = 0.5, keep: str = "label_size",
                 seed: int | None = None, rng: np.random.Generator | None = None,
                 load_kwargs: dict[str, Any] | None = None):
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p must be in [0, 1], got {p}")
        if keep not in KEEPS:
            raise ValueError(f"keep must be one of {', '.join(KEEPS)}, got {keep!r}")
        self.generator = LazyGenerator(generator, load_kwargs)
        self.p = float(p)
        self.keep = keep
        self._rng = rng if rng is not None else np.random.default_rng(seed)
        self._pid = os.getpid()
        self.last_swapped = False

    def _stream(self) -> np.random.Generator:
        if self._pid != os.getpid():  # a copy in a worker: give each worker its own stream
            info = get_worker_info()
            worker = 0 if info is None else info.id
            self._rng = np.random.default_rng([int(self._rng.integers(2**63)), worker])
            self._pid = os.getpid()
        return self._rng

    def __call__(self, image: np.ndarray, label: np.ndarray, instance: np.ndarray | None = None,
                 seed: int | None = None) -> tuple[np.ndarray, ...]:
        """Transform one pair.

        Args:
            image: ``H×W×3`` uint8 RGB photo.
            label: ``H×W`` integer class ids in the generator's vocabulary (255 = ignore).
            instance: Optional ``H×W`` instance ids (improves the synthetic image's edges).
            seed: Draw this call's decision and noise from ``default_rng(seed)`` instead of
                the stream.

        Returns:
            ``(image, label)``, or ``(image, label, instance)`` when ``instance`` is given.
        """
        label = np.asarray(label)
        if label.ndim != 2 or np.asarray(image).shape[:2] != label.shape:
            raise ValueError(f"image {np.asarray(image).shape} and label {label.shape} must be "
                             "H×W×3 and H×W of the same size")
        rng = np.random.default_rng(seed) if seed is not None else self._stream()
        swap = bool(rng.random() < self.p)
        noise_seed = int(rng.integers(2**63))
        self.last_swapped = swap
        if not swap and self.keep == "label_size":
            return (image, label) if instance is None else (image, label, instance)
        gen = self.generator.get()
        size = tuple(gen.resolution)
        lm = LabelMap(label, instance).resized(size)
        if swap:
            out = gen.generate([lm], [noise_seed])[0]
        else:
            out = resize_image(np.asarray(image), size)
        if self.keep == "label_size":
            out = resize_image(out, label.shape)
            return (out, label) if instance is None else (out, label, instance)
        sem = lm.semantic.astype(label.dtype, copy=False)
        if instance is None:
            return out, sem
        return out, sem, lm.instance.astype(np.asarray(instance).dtype, copy=False)

    def __repr__(self) -> str:
        return f"SyntheticSwap(p={self.p}, keep={self.keep!r})"
