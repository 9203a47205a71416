"""Engine inputs built on the host: :class:`InputSpec` and the compact :class:`EngineBatch`.

The host side of the engine contract. A generator's :class:`InputSpec` (what it takes, no
engine inside, picklable) turns label maps already at the engine resolution and their
seeds into an :class:`EngineBatch`: plain numpy arrays in the smallest types that hold
them, cheap to build in a worker process and to send between processes and over PCIe.
Widening (int64 labels, float edges, the one-hot inside the model) happens where the
engine runs, in :mod:`sisgen.engines.device`.

What crosses, per pixel: labels 1 byte (uint8; class ids are < 256, 255 = ignore), the ids
instance edges are computed from 4 bytes (only for engines that use edges), compact
instance ids 4 bytes (only for engines with an ``instances`` input), photo 3 bytes and hole
1 byte (photo-editing engines). Noise crosses compact: a ``[B, z]`` vector, OASIS-style
replicated noise as its ``[B, C]`` vectors (repeated over ``H×W`` on the device), per-pixel
noise as it is. A noise-region mark makes replicated noise vary per pixel; a batch with a
mark on such a model carries the full ``[B, C, H, W]`` noise.

Everything random is drawn here exactly as :meth:`sisgen.engines.Generator.prepare` always
drew it (noise from per-sample seeds through :mod:`sisgen.noise`, style features from
:mod:`sisgen.models.style_features`), so a batch built here gives the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

import cv2
import numpy as np
import torch

from ..labelmap import HOLE_KEY, NOISE_MASK_KEY, PHOTO_KEY, LabelMap
from ..noise import expand_noise, noise_from_seeds

__all__ = ["EngineBatch", "InputSpec", "compact_instance_ids"]


def compact_instance_ids(instance: np.ndarray, dtype: Any = np.int64) -> np.ndarray:
    """Instance ids renumbered ``1..K`` in increasing order (0 stays 0), as ``dtype``.

    The partition into instances is unchanged; compact ids keep the models' bounded id
    space exact (see :func:`sisgen.models.layers.intra_class_position_map`). Non-negative
    ids of moderate size (Cityscapes ``class*1000+k``) are ranked with a ``bincount`` table
    instead of a sort; others (COCO panoptic ``R+256G+256²B`` ids) with ``np.unique``. Both
    give the same ids.
    """
    inst = np.asarray(instance)
    if inst.size and inst.dtype.kind in "iu":
        lo, hi = int(inst.min()), int(inst.max())
        if lo >= 0 and hi < max(1 << 16, 4 * inst.size):
            present = np.bincount(inst.reshape(-1), minlength=1) > 0
            present[0] = False
            return np.cumsum(present)[inst].astype(dtype, copy=False)
    ids = np.unique(inst)
    ids = ids[ids != 0]
    return np.where(inst == 0, 0, np.searchsorted(ids, inst) + 1).astype(dtype)


@dataclass
class EngineBatch:
    """One batch of compact engine inputs (numpy; picklable; see the module docstring).

    Attributes:
        labels: uint8 ``[B,H,W]`` class ids (255 = ignore).
        seeds: int64 ``[B]`` per-sample seeds (provenance; the noise is already drawn;
            uint64 where a seed needs it).
        edge_ids: int32 ``[B,H,W]`` ids whose 4-neighbour changes are the instance edges:
            the map's instance ids, or its class ids where it has no instance map.
            ``None`` for engines that take no edges.
        instances: int32 ``[B,H,W]`` compact instance ids (``1..K`` per map, 0 = none), for
            engines with an ``instances`` input; else ``None``.
        noise: float32 ``[B,z]`` vectors, ``[B,C]`` compact replicated noise, or full
            ``[B,C,H,W]`` maps; ``None`` for models without noise.
        features: float32 ``[B,F,H,W]`` per-object style features (pix2pixHD), or ``None``.
        image: The photo of photo-editing engines: uint8 ``[B,H,W,3]`` (rows of maps
            without a photo are zero and :attr:`has_photo` is False there), or float32
            ``[B,3,H,W]`` in [-1, 1] for photos that are not uint8; else ``None``.
        has_photo: bool ``[B]``: which rows of a uint8 :attr:`image` hold a photo.
        mask: uint8 ``[B,H,W]`` hole to synthesize (1), for photo-editing engines.
    """

    labels: np.ndarray
    seeds: np.ndarray
    edge_ids: np.ndarray | None = None
    instances: np.ndarray | None = None
    noise: np.ndarray | None = None
    features: np.ndarray | None = None
    image: np.ndarray | None = None
    has_photo: np.ndarray | None = None
    mask: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of all arrays (what crosses to the engine's device)."""
        return sum(a.nbytes for a in self._arrays().values())

    def _arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)
                if getattr(self, f.name) is not None}

    def slice(self, start: int, stop: int) -> EngineBatch:
        """Samples ``start:stop`` (views, no copies)."""
        return EngineBatch(**{k: v[start:stop] for k, v in self._arrays().items()})

    @classmethod
    def concat(cls, batches: Sequence[EngineBatch]) -> EngineBatch:
        """One batch of several (built by one :class:`InputSpec`), in order.

        Where the parts differ in form, the compact one is widened on the host, exactly:
        compact replicated noise repeated to the full maps of another part, a uint8 photo
        converted to float where another part carries a float photo.

        Raises:
            ValueError: No batches, or parts that carry different inputs.
        """
        if not batches:
            raise ValueError("no batches to concatenate")
        if len(batches) == 1:
            return batches[0]
        names = [set(b._arrays()) - {"has_photo"} for b in batches]
        if any(n != names[0] for n in names):
            raise ValueError("cannot concatenate engine batches that carry different inputs")
        out: dict[str, np.ndarray] = {}
        for name in names[0]:
            parts = [getattr(b, name) for b in batches]
            if name == "noise" and len({p.ndim for p in parts}) > 1:
                full = next(p for p in parts if p.ndim == 4).shape[1:]
                parts = [p if p.ndim == 4 else np.broadcast_to(p[:, :, None, None],
                                                               (len(p), *full)) for p in parts]
            if name == "image":
                if len({p.dtype for p in parts}) > 1:
                    parts = [_float_image(b.image, b.has_photo) for b in batches]
                else:
                    flags = [b.has_photo for b in batches]
                    if all(f is not None for f in flags):
                        out["has_photo"] = np.concatenate(flags)
            out[name] = np.concatenate(parts)
        return cls(**out)


@dataclass(frozen=True, eq=False)
class InputSpec:
    """What the host needs to build a generator's inputs (no engine inside; picklable).

    :meth:`sisgen.engines.Generator.input_spec` returns it; worker processes use it to
    build :class:`EngineBatch` es that :meth:`sisgen.engines.Generator.run` feeds.

    Attributes:
        resolution: ``(H, W)`` the engine takes.
        noise_spec: The model's noise spec (:mod:`sisgen.noise`).
        uses_edges: Whether the engine takes instance edges.
        takes_instances: Whether it has an ``instances`` input (CLADE-ICPE, SAFM).
        takes_features: Whether it has a ``features`` input (pix2pixHD instance features).
        takes_photo: Whether it edits photos (``image`` and ``mask`` inputs, SESAME).
        feature_clusters: ``{class: [k, F]}`` style-feature centres (``features`` input).
        model_name: Registry name (for messages).
    """

    resolution: tuple[int, int]
    noise_spec: dict[str, Any]
    uses_edges: bool = True
    takes_instances: bool = False
    takes_features: bool = False
    takes_photo: bool = False
    feature_clusters: dict[int, np.ndarray] | None = None
    model_name: str = ""

    @property
    def spatial_noise(self) -> bool:
        """Whether the noise is a ``[C,H,W]`` map (local resampling possible)."""
        return len(self.noise_spec.get("shape") or ()) == 3

    def build(self, labelmaps: Sequence[LabelMap], seeds: Sequence[int],
              base_seeds: Sequence[int] | None = None, *, edges: bool | None = None
              ) -> EngineBatch:
        """The compact inputs of label maps at the engine resolution, one seed each.

        Local resampling: a map whose ``meta["noise_mask"]`` is set gets noise (and
        features) from its own seed inside the mask and from ``base_seeds[i]`` (its base
        style) outside, so only the marked region changes style. That needs spatial noise
        or a ``features`` input.

        Args:
            labelmaps: Maps already at :attr:`resolution` (the host resizes them).
            seeds: One seed per map.
            base_seeds: The unmarked style of maps with noise-region marks.
            edges: Build :attr:`EngineBatch.edge_ids` (default: when :attr:`uses_edges`).

        Raises:
            ValueError: A map at another size, class ids outside 0..255, a seed count that
                is not one per map, or noise-region marks the model cannot honour (a noise
                vector), or without ``base_seeds``; per-object features without clusters.
        """
        h, w = self.resolution
        if len(seeds) != len(labelmaps):
            raise ValueError(f"one seed per label map: {len(labelmaps)} maps, {len(seeds)} seeds")
        for lm in labelmaps:
            if lm.shape != (h, w):
                raise ValueError(f"label map {lm.id} is {lm.shape[0]}x{lm.shape[1]}; the engine "
                                 f"takes {h}x{w} (resize it first: LabelMap.resized)")
        labels = np.stack([_label_ids(lm) for lm in labelmaps])
        batch = EngineBatch(labels=labels, seeds=_seed_array(seeds))
        if self.uses_edges if edges is None else edges:
            batch.edge_ids = np.stack([lm.instance if lm.instance is not None
                                       else labels[i].astype(np.int32)
                                       for i, lm in enumerate(labelmaps)])
        instances = None
        if self.takes_instances or self.takes_features:
            instances = np.stack([np.zeros((h, w), np.int32) if lm.instance is None
                                  else compact_instance_ids(lm.instance, np.int32)
                                  for lm in labelmaps])
            if self.takes_instances:
                batch.instances = instances
        masks = [lm.meta.get(NOISE_MASK_KEY) for lm in labelmaps]
        noise = noise_from_seeds(self.noise_spec, seeds, compact=True)
        features = None
        if self.takes_features:
            features = self._features(labels, instances, seeds)
        if any(m is not None for m in masks):
            noise, features = self._resample(masks, noise, features, labels, instances,
                                             base_seeds)
        batch.noise = None if noise is None else noise.numpy()
        batch.features = None if features is None else features.numpy()
        if self.takes_photo:
            batch.image, batch.has_photo, batch.mask = _photo_arrays(labelmaps, (h, w))
        return batch

    def _resample(self, masks: list[np.ndarray | None], noise: torch.Tensor | None,
                  features: torch.Tensor | None, labels: np.ndarray,
                  instances: np.ndarray | None, base_seeds: Sequence[int] | None
                  ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """Noise and features from the base seeds outside each map's noise-region mark."""
        if not (self.spatial_noise or self.takes_features):
            raise ValueError(
                "noise-region marks need a model with spatial noise or style features; "
                f"{self.model_name or 'this'} model takes a noise vector "
                f"{self.noise_spec.get('shape')}")
        if base_seeds is None:
            raise ValueError("noise-region marks need base_seeds (the unmarked style)")
        if self.spatial_noise:
            base = noise_from_seeds(self.noise_spec, base_seeds, compact=True)
            noise = _keep_outside(masks, expand_noise(noise, self.noise_spec),
                                  expand_noise(base, self.noise_spec))
        if features is not None:
            features = _keep_outside(masks, features,
                                     self._features(labels, instances, base_seeds))
        return noise, features

    def _features(self, labels: np.ndarray, instances: np.ndarray, seeds: Sequence[int]
                  ) -> torch.Tensor:
        """One cluster centre per object and sample, drawn from the sample's seed."""
        from ..models.style_features import sample_feature_map

        if not self.feature_clusters:
            raise ValueError(
                f"{self.model_name or 'this'} model takes per-object style features but has no "
                "feature clusters: train it with sisgen (the clusters are computed at the end "
                "of training) or set model.feature_clusters before saving/exporting it")
        label_t = torch.from_numpy(labels).long()
        instance_t = torch.from_numpy(instances).long()
        return torch.cat([
            sample_feature_map(self.feature_clusters, label_t[i:i + 1], instance_t[i:i + 1],
                               generator=int(seed))
            for i, seed in enumerate(seeds)])


def _seed_array(seeds: Sequence[int]) -> np.ndarray:
    """Seeds as int64 (uint64 for seeds of 2**63 and more, which torch also takes)."""
    values = [int(s) for s in seeds]
    big = any(v >= 1 << 63 for v in values)
    return np.array(values, dtype=np.uint64 if big else np.int64).reshape(-1)


def _label_ids(labelmap: LabelMap) -> np.ndarray:
    """A map's class ids as uint8 (the ids of every vocabulary are < 256)."""
    sem = labelmap.semantic
    if sem.dtype == np.uint8:
        return sem
    if sem.size and (int(sem.min()) < 0 or int(sem.max()) > 255):
        raise ValueError(f"label map {labelmap.id} has class ids outside 0..255 "
                         f"({int(sem.min())}..{int(sem.max())})")
    return sem.astype(np.uint8)


def _keep_outside(masks: Sequence[np.ndarray | None], new: torch.Tensor, base: torch.Tensor
                  ) -> torch.Tensor:
    """``new`` inside each sample's mask (resized nearest to ``new``'s H×W), ``base`` outside."""
    h, w = new.shape[-2:]
    out = new.clone()
    for i, m in enumerate(masks):
        if m is None:
            continue
        m = cv2.resize(np.asarray(m, np.uint8), (w, h), interpolation=cv2.INTER_NEAREST)
        out[i] = torch.where(torch.from_numpy(m.astype(bool)), new[i], base[i])
    return out


def _photo_arrays(labelmaps: Sequence[LabelMap], size: tuple[int, int]
                  ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``(image, has_photo, mask)`` of the maps' photos and holes at ``size``.

    A map without ``meta["photo"]`` is synthesized whole (its hole is the frame). Photos are
    resized with area averaging in their own dtype; a hole pixel touched at full size stays
    in the hole, so nothing edited leaks through.
    """
    h, w = size
    photos, holes = [], []
    for lm in labelmaps:
        photo, hole = lm.meta.get(PHOTO_KEY), lm.meta.get(HOLE_KEY)
        if photo is None or hole is None:
            photos.append(None)
            holes.append(np.ones((h, w), np.uint8))
            continue
        photo, hole = np.asarray(photo), np.asarray(hole, np.uint8)
        if photo.shape[:2] != (h, w):
            photo = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
            hole = cv2.resize(hole.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA) > 0
        photos.append(photo)
        holes.append(hole.astype(np.uint8, copy=False))
    has = np.array([p is not None for p in photos])
    image = np.zeros((len(photos), h, w, 3), np.uint8)
    for i, p in enumerate(photos):
        if p is not None and p.dtype == np.uint8:
            image[i] = p
    if any(p is not None and p.dtype != np.uint8 for p in photos):
        image = _float_image(image, has)
        for i, p in enumerate(photos):
            if p is not None and p.dtype != np.uint8:
                image[i] = (p.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)
        return image, None, np.stack(holes)
    return image, has, np.stack(holes)


def _float_image(image: np.ndarray, has_photo: np.ndarray | None) -> np.ndarray:
    """A batch photo as float32 ``[B,3,H,W]`` in [-1, 1] (rows without a photo: 0)."""
    if image.dtype != np.uint8:
        return image
    out = np.ascontiguousarray((image.astype(np.float32) / 127.5 - 1.0).transpose(0, 3, 1, 2))
    if has_photo is not None:
        out[~has_photo] = 0.0
    return out

