"""Quality filtering of generated images with a segmenter.

A :class:`QualityFilter` segments each generated image with a
:class:`~sisgen.segmenter.Segmenter` (or any callable ``images -> class ids``) and compares
the prediction with the label map it was generated from, in one of three modes:

* ``"drop"``: images whose mIoU falls below a threshold are dropped, labels untouched;
* ``"ignore_disagreement"``: also, the pixels where the segmenter disagrees are set to the
  ignore id (255) in the returned label map;
* ``"loss"`` (FreeMask, Yang et al. 2023): a pixel whose cross-entropy under the segmenter
  exceeds ``factor`` times its class's mean loss on *real* images (a
  :class:`~sisgen.curation.ReferenceStats`) is set to 255; ``max_ignored`` optionally drops
  an image when too large a share of its pixels is ignored.

Pipeline use, per engine batch::

    results = quality_filter.apply(images, labelmaps)   # list[FilterResult]
    for r in results:
        if r.keep:
            write(r.image, r.labelmap)     # r.labelmap has 255 where ignored
        record(r.to_dict())                # {"miou", "pixel_acc", "keep", "ignored_pixels",
                                           #  "ignored_fraction", "class_ignored"}

The segmenter itself, its metadata sidecar and its helpers live in :mod:`sisgen.segmenter`;
they are re-exported here, so ``from sisgen.filtering import Segmenter`` keeps working.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .labelmap import IGNORE_ID, LabelMap
from .segmenter import (
    SEGMENTER_FORMAT,
    Segmenter,
    class_map_from_train_ids,
    segmenter_metadata,
    sidecar_path,
)
from .vocab import Vocabulary

__all__ = [
    "DEFAULT_LOSS_FACTOR", "IGNORING_MODES", "MODES", "SEGMENTER_FORMAT", "FilterResult",
    "QualityFilter", "Segmenter", "class_map_from_train_ids", "score_prediction",
    "segmenter_metadata", "sidecar_path",
]

MODES = ("drop", "ignore_disagreement", "loss")
#: Modes that write ignore pixels into the label maps.
IGNORING_MODES = ("ignore_disagreement", "loss")
#: FreeMask's loss factor: pixels above 1.25x their class's mean real loss are ignored.
DEFAULT_LOSS_FACTOR = 1.25


def score_prediction(prediction: np.ndarray, label: np.ndarray, ignore_id: int = IGNORE_ID
                     ) -> tuple[float, float, dict[int, float]]:
    """Per-image agreement of a prediction with a label map.

    IoU is computed for each class present in ``label`` (ignored pixels excluded from both
    sides); mIoU is their mean. Pixel accuracy is the fraction of non-ignored pixels where
    the prediction equals the label.

    Returns:
        ``(miou, pixel_acc, {class id: iou})``; ``nan`` scores when every pixel is ignored.
    """
    valid = label != ignore_id
    if not valid.any():
        return math.nan, math.nan, {}
    gt = label[valid]
    pr = prediction[valid]
    ious: dict[int, float] = {}
    for c in np.unique(gt):
        g = gt == c
        p = pr == c
        ious[int(c)] = float((g & p).sum() / (g | p).sum())
    return float(np.mean(list(ious.values()))), float((gt == pr).mean()), ious


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 5)


@dataclass
class FilterResult:
    """The verdict on one generated image.

    Attributes:
        keep: Whether to keep the sample.
        miou: mIoU over the classes present in the label (``nan``: nothing to score).
        pixel_acc: Pixel accuracy over non-ignored pixels.
        labelmap: The label map to write: the input one, or in an ignoring mode a copy with
            the rejected pixels set to 255 (instance ids untouched).
        image: The generated image (passed through).
        ignored_pixels: Pixels newly set to 255.
        class_iou: IoU per class present in the label.
        ignored_fraction: In an ignoring mode, ``ignored_pixels`` over the labelled pixels
            (``nan`` when none is labelled); ``None`` in ``drop`` mode.
        class_ignored: In an ignoring mode, per class present (by name): the fraction of
            its pixels set to 255.
        reason: Why a dropped sample was dropped (``"miou"``, ``"pixel_acc"`` or
            ``"max_ignored"``); ``None`` when kept.
    """

    keep: bool
    miou: float
    pixel_acc: float
    labelmap: LabelMap
    image: np.ndarray | None = None
    ignored_pixels: int = 0
    class_iou: dict[int, float] = field(default_factory=dict)
    ignored_fraction: float | None = None
    class_ignored: dict[str, float] = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready scores for a manifest (``nan`` becomes ``None``)."""
        out: dict[str, Any] = {"keep": self.keep, "miou": _num(self.miou),
                               "pixel_acc": _num(self.pixel_acc),
                               "ignored_pixels": self.ignored_pixels}
        if self.ignored_fraction is not None:
            out["ignored_fraction"] = _num(self.ignored_fraction)
            out["class_ignored"] = {k: round(v, 5) for k, v in self.class_ignored.items()}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


class QualityFilter:
    """Keep, drop or partly ignore generated images by what a segmenter sees in them.

    Args:
        segmenter: A :class:`Segmenter` (or, in the ``drop`` and ``ignore_disagreement``
            modes, any callable ``images -> [B,H,W] class ids``).
        min_miou: Samples with mIoU below this are dropped (in every mode; use 0 to keep
            everything). Samples with nothing to score (all ignored) are kept.
        min_pixel_acc: Optional pixel-accuracy threshold, also required to keep.
        mode: ``"drop"`` (labels untouched), ``"ignore_disagreement"`` (labels of kept
            samples get 255 where the prediction differs) or ``"loss"`` (255 where the
            pixel's cross-entropy exceeds ``factor`` x its class's mean real loss).
        ignore_id: The ignore id.
        reference: ``"loss"`` mode: the per-class mean losses on real images, a
            :class:`~sisgen.curation.ReferenceStats` or a mapping ``{class id: mean loss}``.
            Pixels of a class without a reference value are never ignored.
        factor: ``"loss"`` mode: the threshold factor (FreeMask: 1.25).
        max_ignored: In an ignoring mode, drop a sample when more than this fraction of
            its labelled pixels is ignored (``None``: never).
        vocabulary: Names classes in :attr:`FilterResult.class_ignored`; default the
            segmenter's, or the data's once :meth:`check_vocabulary` has seen it.
    """

    def __init__(self, segmenter: Segmenter | Callable[[np.ndarray], np.ndarray], *,
                 min_miou: float = 0.5, min_pixel_acc: float | None = None,
                 mode: str = "drop", ignore_id: int = IGNORE_ID, reference: Any = None,
                 factor: float = DEFAULT_LOSS_FACTOR, max_ignored: float | None = None,
                 vocabulary: Vocabulary | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "loss":
            if reference is None:
                raise ValueError("mode 'loss' needs reference= (per-class real losses)")
            if not hasattr(segmenter, "loss_and_prediction"):
                raise TypeError("mode 'loss' needs a Segmenter (it computes pixel losses)")
            if not factor > 0:
                raise ValueError(f"factor must be > 0, got {factor}")
        if max_ignored is not None and mode not in IGNORING_MODES:
            raise ValueError(f"max_ignored needs an ignoring mode ({', '.join(IGNORING_MODES)})")
        self.segmenter = segmenter
        self.min_miou = float(min_miou)
        self.min_pixel_acc = None if min_pixel_acc is None else float(min_pixel_acc)
        self.mode = mode
        self.ignore_id = int(ignore_id)
        self.reference = reference
        self.factor = float(factor)
        self.max_ignored = None if max_ignored is None else float(max_ignored)
        self.vocabulary = vocabulary or getattr(segmenter, "vocabulary", None)
        self.thresholds = self._thresholds() if mode == "loss" else None

    def _thresholds(self) -> np.ndarray:
        """Per class id (256 entries): the loss above which a pixel is ignored."""
        table = np.full(256, np.inf)
        losses = getattr(self.reference, "class_loss", self.reference)
        for class_id, mean in dict(losses).items():
            if mean is not None and math.isfinite(float(mean)) and 0 <= int(class_id) < 256:
                table[int(class_id)] = self.factor * float(mean)
        return table

    def check_vocabulary(self, vocabulary: Vocabulary, what: str = "the data") -> None:
        """Check the segmenter (and the loss reference) against the data's vocabulary.

        Also names classes by ``vocabulary`` from now on, unless a vocabulary was given.

        Raises:
            SisgenInputError: Another vocabulary; names the segmenter or statistics file.
        """
        for part in (self.segmenter, self.reference):
            check = getattr(part, "check_vocabulary", None)
            if check is not None:
                check(vocabulary, what)
        if self.vocabulary is None:
            self.vocabulary = vocabulary

    def score(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray | LabelMap]
              ) -> list[tuple[float, float]]:
        """``(miou, pixel_acc)`` per image."""
        return [(r.miou, r.pixel_acc) for r in self.apply(images, labels)]

    def _name(self, class_id: int) -> str:
        voc = self.vocabulary
        return voc[class_id].name if voc is not None and class_id in voc else str(class_id)

    def apply(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray | LabelMap]
              ) -> list[FilterResult]:
        """Judge one batch of generated images against the maps they were generated from.

        Args:
            images: ``H×W×3`` uint8 images (all one size).
            labels: Their label maps (:class:`LabelMap` or ``H×W`` arrays), same size.

        Returns:
            One :class:`FilterResult` per image, in order.
        """
        if len(images) != len(labels):
            raise ValueError("one label map per image")
        if not len(images):
            return []
        maps = [lm if isinstance(lm, LabelMap) else LabelMap(np.asarray(lm)) for lm in labels]
        for im, lm in zip(images, maps, strict=True):
            if np.asarray(im).shape[:2] != lm.shape:
                raise ValueError(f"image {np.asarray(im).shape[:2]} and label {lm.shape} "
                                 "differ in size")
        batch = np.stack([np.asarray(im) for im in images])
        losses: Any = [None] * len(maps)
        if self.mode == "loss":
            losses, preds = self.segmenter.loss_and_prediction(  # type: ignore[union-attr]
                batch, [lm.semantic for lm in maps])
        else:
            preds = np.asarray(self.segmenter(batch))
        return [self._judge(im, lm, pred, loss)
                for im, lm, pred, loss in zip(images, maps, preds, losses, strict=True)]

    __call__ = apply

    def _judge(self, image: np.ndarray, lm: LabelMap, pred: np.ndarray,
               loss: np.ndarray | None) -> FilterResult:
        miou, acc, ious = score_prediction(pred, lm.semantic, self.ignore_id)
        reason = None
        if not math.isnan(miou):
            if miou < self.min_miou:
                reason = "miou"
            elif self.min_pixel_acc is not None and acc < self.min_pixel_acc:
                reason = "pixel_acc"
        result = FilterResult(reason is None, miou, acc, lm, image, 0, ious, reason=reason)
        if self.mode not in IGNORING_MODES:
            return result
        labelled = lm.semantic != self.ignore_id
        if self.mode == "loss":
            assert loss is not None and self.thresholds is not None
            table_ids = np.clip(lm.semantic, 0, 255)
            bad = labelled & (loss > self.thresholds[table_ids])  # nan compares False
        else:
            bad = (pred != lm.semantic) & labelled
        ignored = int(bad.sum())
        n_labelled = int(labelled.sum())
        result.ignored_pixels = ignored
        result.ignored_fraction = ignored / n_labelled if n_labelled else math.nan
        ids, totals = np.unique(lm.semantic[labelled], return_counts=True)
        dropped = np.bincount(lm.semantic[bad].astype(np.int64), minlength=256)
        result.class_ignored = {self._name(int(c)): float(dropped[c] / t)
                                for c, t in zip(ids, totals, strict=True)}
        if ignored:
            out = lm.copy()
            out.semantic[bad] = self.ignore_id
            out.meta["quality_ignored_pixels"] = ignored
            result.labelmap = out
        if (result.keep and self.max_ignored is not None and n_labelled
                and result.ignored_fraction > self.max_ignored):
            result.keep, result.reason = False, "max_ignored"
        return result

    def __repr__(self) -> str:
        extra = f", factor={self.factor}" if self.mode == "loss" else ""
        return f"QualityFilter(min_miou={self.min_miou}, mode={self.mode!r}{extra})"
