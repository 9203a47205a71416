"""pix2pixHD's per-object style features: the feature bank, its clusters, test-time sampling.

pix2pixHD's instance-wise encoder (:class:`sisgen.models.pix2pixhd_encoder.
Pix2PixHDEncoder`) gives every object of a photo one constant style vector. After
training, those vectors are collected over the training set (:func:`encode_features`),
clustered per class with k-means (:func:`cluster_features`), and at test time every object
of a label map gets one cluster centre of its class drawn at random
(:func:`sample_feature_map`): per-object style without a photo. The centres travel as
``SISGenerator.feature_clusters`` in ``config.json`` and in the export metadata
(:func:`clusters_to_dict` / :func:`clusters_from_dict`).

An *object* is a connected id in an instance map, or -- for pixels without an instance
(``0`` in :class:`sisgen.labelmap.LabelMap` instance maps) -- all pixels of one class:
:func:`object_ids` combines the two into one id per object.

This module sits low in :mod:`sisgen.models` (numpy, torch and sisgen's errors only), so
the model base class, the engines, the exporters and the trainer read it without
importing an architecture.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..errors import SisgenInputError

#: Official bookkeeping: an object's area is stored as ``pixels / (H*W // 32)``, and only
#: objects with a stored area above 0.5 (larger than 1/64 of the image) are clustered.
AREA_BLOCKS = 32
MIN_AREA = 0.5


def object_ids(labels: torch.Tensor, instance: torch.Tensor | None = None) -> torch.Tensor:
    """One int64 id per object: ``class << 32 | instance`` (instance 0: the class region).

    Args:
        labels: ``[B,H,W]`` class ids.
        instance: ``[B,H,W]`` instance ids (0 = no instance), or ``None`` for
            one region per class (the official ``--label_feat`` mode).

    Returns:
        ``[B,H,W]`` int64 ids; ``ids >> 32`` recovers the class.
    """
    ids = labels.long() << 32
    if instance is not None:
        ids = ids | instance.long()
    return ids


@torch.no_grad()
def encode_features(encoder: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                    images: torch.Tensor, labels: torch.Tensor,
                    instance: torch.Tensor | None = None) -> dict[int, np.ndarray]:
    """Per-object features of a batch, grouped by class (the official ``encode_features``).

    Args:
        encoder: The trained encoder (a :class:`~sisgen.models.pix2pixhd_encoder.
            Pix2PixHDEncoder`): ``encoder(images, regions) -> [B,F,H,W]``.
        images: ``[B,3,H,W]`` photos in [-1, 1].
        labels: ``[B,H,W]`` class ids (255 = ignore: skipped).
        instance: ``[B,H,W]`` instance ids or ``None``.

    Returns:
        ``{class: [n, feat_num + 1]}``: one row per object, its feature vector and its area
        (pixels / ``(H*W // 32)``). Merge batches with :func:`merge_features`.
    """
    regions = object_ids(labels, instance)
    feats = encoder(images, regions)  # [B,F,H,W]
    h, w = labels.shape[-2:]
    out: dict[int, list[np.ndarray]] = {}
    for b in range(labels.shape[0]):
        ids, first, counts = _first_index(regions[b].reshape(-1))
        vec = feats[b].reshape(feats.shape[1], -1)[:, first].T.cpu().numpy()  # [n,F]
        area = counts.cpu().numpy().astype(np.float64) / (h * w // AREA_BLOCKS)
        for cls, v, a in zip((ids >> 32).tolist(), vec, area, strict=True):
            if cls == 255:
                continue
            out.setdefault(int(cls), []).append(np.append(v.astype(np.float64), a))
    return {k: np.stack(v) for k, v in out.items()}


def _first_index(flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unique values of ``flat``, the first position of each, and their counts."""
    ids, inverse, counts = torch.unique(flat, return_inverse=True, return_counts=True)
    pos = torch.arange(flat.numel(), device=flat.device)
    first = torch.full_like(ids, flat.numel()).scatter_reduce(0, inverse, pos, "amin")
    return ids, first, counts


def merge_features(*banks: dict[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Concatenate the per-class rows of several :func:`encode_features` results."""
    out: dict[int, list[np.ndarray]] = {}
    for bank in banks:
        for k, v in bank.items():
            out.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in out.items()}


def kmeans(x: np.ndarray, k: int, seed: int = 0, n_init: int = 10, max_iter: int = 300,
           tol: float = 1e-6) -> np.ndarray:
    """Lloyd's k-means with k-means++ seeding; the best of ``n_init`` runs.

    Args:
        x: ``[n, d]`` points.
        k: Clusters (``<= n``).
        seed: Seed of the initialisations.
        n_init: Restarts; the run with the lowest inertia wins.
        max_iter: Lloyd iterations per run.
        tol: Stop when no centre moves more than this.

    Returns:
        ``[k, d]`` centres.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n}, got {k}")
    rng = np.random.default_rng(seed)
    best, best_inertia = x[:k].copy(), np.inf
    for _ in range(n_init):
        centres = x[[rng.integers(n)]]
        for _ in range(1, k):  # k-means++: next centre with probability ~ squared distance
            d2 = ((x[:, None] - centres[None]) ** 2).sum(-1).min(1)
            total = d2.sum()
            idx = rng.integers(n) if total <= 0 else rng.choice(n, p=d2 / total)
            centres = np.vstack([centres, x[idx]])
        for _ in range(max_iter):
            assign = ((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)
            new = np.stack([x[assign == j].mean(0) if (assign == j).any() else centres[j]
                            for j in range(k)])
            shift = np.abs(new - centres).max()
            centres = new
            if shift <= tol:
                break
        inertia = ((x - centres[((x[:, None] - centres[None]) ** 2).sum(-1).argmin(1)]) ** 2).sum()
        if inertia < best_inertia:
            best, best_inertia = centres, inertia
    return best


def cluster_features(bank: dict[int, np.ndarray], n_clusters: int = 10,
                     min_area: float = MIN_AREA, seed: int = 0) -> dict[int, np.ndarray]:
    """Cluster each class's object features (the official ``--n_clusters`` step).

    Objects with an area at or below ``min_area`` are left out; a class with fewer objects
    than ``n_clusters`` gets one centre per object; a class with none gets no entry.

    Returns:
        ``{class: [k, feat_num]}`` centres.
    """
    centres = {}
    for cls, rows in bank.items():
        feats = rows[rows[:, -1] > min_area, :-1]
        if len(feats):
            centres[cls] = kmeans(feats, min(len(feats), n_clusters), seed=seed)
    return centres


def clusters_to_dict(centres: dict[int, np.ndarray]) -> dict[str, list[list[float]]]:
    """``{class: [k, F]}`` centres as JSON-ready ``{"class": [[...], ...]}``."""
    return {str(int(k)): np.asarray(v, np.float64).tolist() for k, v in sorted(centres.items())}


def clusters_from_dict(obj: Any, source: str | os.PathLike | None = None
                       ) -> dict[int, np.ndarray]:
    """Parse :func:`clusters_to_dict`'s form (from ``config.json`` or export metadata).

    Raises:
        SisgenInputError: Not a mapping of class ids to non-empty ``[k, F]`` lists of numbers
            with one ``F`` for every class (the message names ``source``).
    """
    if not isinstance(obj, dict):
        raise SisgenInputError("feature_clusters must map class ids to lists of centres",
                               source)
    out: dict[int, np.ndarray] = {}
    for key, rows in obj.items():
        try:
            cls = int(key)
            arr = np.asarray(rows, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise SisgenInputError(f"feature_clusters[{key!r}]: not a class id with numeric "
                                   f"centres ({e})", source) from e
        if arr.ndim != 2 or not len(arr) or not np.isfinite(arr).all():
            raise SisgenInputError(f"feature_clusters[{key!r}] must be a non-empty [k, F] list "
                                   f"of finite numbers, got shape {list(arr.shape)}", source)
        out[cls] = arr
    if len({a.shape[1] for a in out.values()}) > 1:
        raise SisgenInputError("feature_clusters: the classes' centres differ in length", source)
    return out


def sample_feature_map(centres: dict[int, np.ndarray], labels: torch.Tensor,
                       instance: torch.Tensor | None = None, feat_num: int | None = None,
                       generator: np.random.Generator | int | None = None) -> torch.Tensor:
    """Build a generator ``features`` input by drawing one cluster centre per object.

    Args:
        centres: :func:`cluster_features` output.
        labels: ``[B,H,W]`` class ids.
        instance: ``[B,H,W]`` instance ids or ``None`` (one style per class region).
        feat_num: Feature channels (taken from ``centres`` when omitted).
        generator: A numpy ``Generator`` or seed for the draws.

    Returns:
        ``[B,feat_num,H,W]`` float32 on ``labels``' device; classes without centres
        (and ignore pixels) get zeros.
    """
    if feat_num is None:
        if not centres:
            raise ValueError("feat_num is needed when there are no centres")
        feat_num = next(iter(centres.values())).shape[1]
    rng = np.random.default_rng(generator)
    regions = object_ids(labels, instance)
    b = labels.shape[0]
    out = torch.zeros(b, feat_num, *labels.shape[-2:], device=labels.device)
    for i in range(b):
        ids, inverse = torch.unique(regions[i], return_inverse=True)  # inverse [H,W]
        table = torch.zeros(len(ids), feat_num)
        for j, cls in enumerate((ids >> 32).tolist()):
            if cls in centres:
                c = centres[cls]
                table[j] = torch.from_numpy(c[rng.integers(len(c))].astype(np.float32))
        out[i] = table.to(labels.device)[inverse].permute(2, 0, 1)
    return out
