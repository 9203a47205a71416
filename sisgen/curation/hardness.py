"""Hardness-aware plans: more samples of the label maps a segmenter finds hard (FreeMask).

**Score.** A map's hardness is the segmenter's *loss-weighted error* on an image of it:
the mean, over the map's scored pixels, of ``CE(pixel) * [prediction != label]`` -- pixels
the segmenter gets right cost nothing, wrong ones cost what they cost the loss. With
reference statistics (:class:`~sisgen.curation.ReferenceStats`) each pixel's loss is first
divided by its class's mean real loss, so a map is hard because its pixels are harder than
usual *for their class*, not merely because it contains a class that is always hard
(classes without a reference value use the overall mean). The image is the map's real
photo, or, without photos, a first synthetic pass (any callable, or a generator through
the one sample path).

**Rank rule** (FreeMask, Yang et al. 2023): sort the ``N`` scored maps by hardness,
ascending (rank 0 = easiest, ties by map order), and give the map of rank ``r``
``min(1 + round(r / N * K), K)`` samples (``round`` half up), ``K = max_samples``: the
easiest get 1, the hardest ``K``. Maps that could not be read get 0 and are listed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import SisgenInputError
from ..segmenter import Segmenter
from ..sources import Source
from .pairs import PairFunction, batched, image_pairs, photo_pairs, synthetic_pairs
from .plan import Plan
from .stats import ReferenceStats

if TYPE_CHECKING:
    from ..engines import Generator


def rank_counts(scores: Sequence[float], max_samples: int) -> list[int]:
    """FreeMask's rank rule (module docstring); ``nan`` scores (unreadable maps) get 0."""
    if max_samples < 1:
        raise SisgenInputError(f"max_samples must be >= 1, got {max_samples}")
    s = np.asarray(scores, np.float64)
    scored = np.flatnonzero(~np.isnan(s))
    counts = np.zeros(len(s), np.int64)
    n = len(scored)
    order = scored[np.argsort(s[scored], kind="stable")]
    for rank, m in enumerate(order):
        counts[m] = min(1 + math.floor(rank / n * max_samples + 0.5), max_samples)
    return [int(c) for c in counts]


def _pixel_weights(reference: ReferenceStats | None) -> np.ndarray:
    """Per class id: the factor each pixel's loss is multiplied by (1 / class mean)."""
    table = np.ones(256, np.float64)
    if reference is None:
        return table
    overall = reference.mean_loss
    fallback = 1.0 / overall if overall and math.isfinite(overall) else 1.0
    table[:] = fallback
    for c, mean in reference.class_loss.items():
        if mean:
            table[c] = 1.0 / mean
    return table


def hardness_scores(segmenter: Segmenter, pairs: PairFunction, maps: int, *,
                    reference: ReferenceStats | None = None, batch_size: int = 8,
                    progress: bool = False) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The hardness of maps ``0..maps-1`` (module docstring).

    Returns:
        ``(scores, skipped)``: float64 ``[maps]`` (``nan`` for maps that could not be read;
        0 for a map with no scored pixel) and the error records of the skipped maps.
    """
    weights = _pixel_weights(reference)
    scores = np.full(maps, np.nan)
    skipped: list[dict[str, Any]] = []
    for batch, errors in batched(pairs, maps, batch_size, progress, desc="hardness"):
        skipped += errors
        if not batch:
            continue
        labels = np.stack([p[2] for p in batch]).astype(np.int64)
        loss, pred = segmenter.loss_and_prediction([p[1] for p in batch], labels)
        for (m, _, _), lab, lo, pr in zip(batch, labels, loss, pred, strict=True):
            ok = np.isfinite(lo)
            if not ok.any():
                scores[m] = 0.0
                continue
            cost = lo[ok] * weights[lab[ok]] * (pr[ok] != lab[ok])
            scores[m] = float(cost.mean())
    return scores, skipped


def hardness_plan(segmenter: Segmenter, source: Source, max_samples: int, *,
                  photos: bool | None = None,
                  images: Callable[[Sequence[int]], Sequence[np.ndarray]] | None = None,
                  generator: Generator | None = None, seed: int = 0, recipe: Any = None,
                  stats: ReferenceStats | None = None, limit: int | None = None,
                  size: tuple[int, int] | None = None, batch_size: int = 8,
                  progress: bool = False) -> Plan:
    """A plan giving hard maps more samples (module docstring).

    Args:
        segmenter: The segmenter judging the images (its classes must be the source's).
        source: The label maps.
        max_samples: ``K`` of the rank rule: samples of the hardest map.
        photos: Score the maps' real photos (the default when neither ``images`` nor
            ``generator`` is given).
        images: Or: ``images(map indices) -> one H×W×3 uint8 image per map`` (the map is
            resized nearest to its image).
        generator: Or: a first synthetic pass -- sample ``i`` of the one sample path with
            run seed ``seed`` and ``recipe``, one sample per map.
        seed: Run seed of the synthetic pass.
        recipe: Edit recipe of the synthetic pass.
        stats: Reference statistics: per-class loss normalisation (module docstring).
        limit: Plan only the first ``limit`` maps.
        size: Score photos at this ``(H, W)`` (best the generator's resolution).
        batch_size: Maps per segmenter call.
        progress: Show a progress bar.

    Returns:
        A :class:`Plan` in mode ``"hardness"``; its report holds the score used, ``K``,
        the count histogram, the skipped maps and every map's score.

    Raises:
        SisgenInputError: Classes that do not match, more than one image origin, or no
            map that could be scored.
    """
    origins = [o for o, on in (("photos", photos), ("images", images is not None),
                               ("synthetic", generator is not None)) if on]
    if len(origins) > 1:
        raise SisgenInputError(f"give one image origin, not {' and '.join(origins)}")
    if not origins and photos is False:
        raise SisgenInputError("no images to score: photos=False and no images= or generator=")
    origin = origins[0] if origins else "photos"
    what = f"the {source.kind} source"
    segmenter.check_vocabulary(source.vocabulary, what)
    if stats is not None:
        stats.check_vocabulary(source.vocabulary, what)
    maps = len(source) if limit is None else min(int(limit), len(source))
    pairs: PairFunction
    if origin == "images":
        pairs = image_pairs(source, images)  # type: ignore[arg-type]
    elif origin == "synthetic":
        pairs = synthetic_pairs(generator, source, seed=seed, recipe=recipe)  # type: ignore[arg-type]
    else:
        pairs = photo_pairs(source, size)
    scores, skipped = hardness_scores(segmenter, pairs, maps, reference=stats,
                                      batch_size=batch_size, progress=progress)
    if np.isnan(scores).all():
        first = skipped[0] if skipped else {}
        raise SisgenInputError(f"no map of {what} could be scored "
                               f"({first.get('error', 'no maps')})", first.get("file"))
    counts = rank_counts(scores, max_samples)
    keys = source.keys()[:maps]
    scored = scores[~np.isnan(scores)]
    report = {
        "score": "ce_error/class_mean" if stats is not None else "ce_error",
        "images": origin, "max_samples": int(max_samples),
        "segmenter": segmenter.path or repr(segmenter),
        "stats": None if stats is None else stats.path,
        "seed": int(seed) if origin == "synthetic" else None,
        "maps": maps, "total": int(sum(counts)),
        "counts": {str(k): int(v) for k, v in zip(*np.unique(counts, return_counts=True),
                                                   strict=True)},
        "hardness_quantiles": {q: float(np.quantile(scored, float(q)))
                               for q in ("0", "0.25", "0.5", "0.75", "1")},
        "skipped": skipped,
        "hardness": {k: (None if math.isnan(s) else round(float(s), 6))
                     for k, s in zip(keys, scores, strict=True)},
    }
    return Plan.from_counts(source, counts, "hardness", report)
