"""Intra-class variation, the statistic of VASIS (pixel spread inside class regions).

Source: Xu et al., "Variation-Aware Semantic Image Synthesis", 2023 (github.com/xml94/VASIS).

VASIS argues that SIS generators collapse *within* a class (every road the same grey) even
when they vary between classes, and measures this on an image set with label maps by
the spread of pixel values inside each class's region. Their evaluation script
(``evaluation/intra_class_variation``) reports four numbers, reimplemented here:

* ``one_color``: per image and class (region of more than one pixel), the standard
  deviation of each RGB channel over the region's pixels (``N - 1`` denominator), averaged
  over the three channels; then averaged over images, then over classes;
* ``one_light``: the same on luminance ``0.299 R + 0.587 G + 0.114 B``;
* ``all_color``: per class, the standard deviation of each channel over the class's
  pixels pooled from *all* images (``N`` denominator), averaged over channels, then over
  classes -- variation across the set, not only inside one picture;
* ``all_light``: the same on luminance.

Pixel values are on the 0..255 scale. Higher means more variation; the paper compares
generated images with the real photos of the same label maps, so this metric reports both
(``icv_*`` for generated images, ``icv_real_*`` for photos when the source has them).

Averaging (``icv_reduction``): the official script divides every per-class sum by the
number of images and every class sum by the number of label channels, counting classes
absent from an image (or from the whole set) as zero variation. That makes the numbers
depend on class frequencies, so the default ``"present"`` averages only over the images
in which a class occurs and over the classes that occur at all. ``"vasis"`` reproduces
the official averaging, with the vocabulary's class count as the number of label
channels (the script used 35 for Cityscapes, 150 for ADE20K, 183 for COCO-Stuff).
Everything is accumulated as float64 running sums, so any number of images fits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sisgen.labelmap import IGNORE_ID

from .base import EvalBatch, Metric, MetricOptions, register_metric

REDUCTIONS = ("present", "vasis")
LUMA = np.array([0.299, 0.587, 0.114])
KEYS = ("one_color", "one_light", "all_color", "all_light")
_N = 256


class IntraClassVariation:
    """Running intra-class variation statistics of one image set (module docstring).

    Args:
        reduction: ``"present"`` or ``"vasis"``.
        num_classes: Label channels for ``"vasis"`` averaging (default: classes seen).
        ignore_id: Label id whose pixels are skipped.
    """

    def __init__(self, reduction: str = "present", num_classes: int | None = None,
                 ignore_id: int = IGNORE_ID):
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(REDUCTIONS)}, "
                             f"got {reduction!r}")
        self.reduction = reduction
        self.num_classes = num_classes
        self.ignore_id = ignore_id
        self.images = 0
        # per class: sums of the per-image stds (color, light) and how many images had it
        self.one_sum = np.zeros((_N, 2))
        self.one_count = np.zeros(_N, np.int64)
        # per class, pooled over images: pixel count, sum and sum of squares of R, G, B, Y
        self.pixels = np.zeros(_N, np.int64)
        self.sum = np.zeros((_N, 4))
        self.sumsq = np.zeros((_N, 4))

    def update(self, image: np.ndarray, label: np.ndarray) -> None:
        """Add one ``H×W×3`` image (0..255) and its ``H×W`` label map."""
        img = np.asarray(image, np.float64)
        label = np.asarray(label)
        if img.shape[:2] != label.shape or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"image {img.shape} and label {label.shape} do not match")
        values = np.concatenate([img, (img @ LUMA)[..., None]], axis=2).reshape(-1, 4)
        flat = label.reshape(-1).astype(np.int64)
        inside = (flat >= 0) & (flat < _N) & (flat != self.ignore_id)
        flat, values = flat[inside], values[inside]
        count = np.bincount(flat, minlength=_N)
        s = np.stack([np.bincount(flat, values[:, k], _N) for k in range(4)], axis=1)
        q = np.stack([np.bincount(flat, values[:, k] ** 2, _N) for k in range(4)], axis=1)
        ok = count >= 2  # the official script skips regions of one pixel
        n = count[ok, None].astype(np.float64)
        std = np.sqrt(np.clip((q[ok] - s[ok] ** 2 / n) / (n - 1), 0.0, None))
        self.one_sum[ok] += np.stack([std[:, :3].mean(axis=1), std[:, 3]], axis=1)
        self.one_count[ok] += 1
        self.pixels[ok] += count[ok]
        self.sum[ok] += s[ok]
        self.sumsq[ok] += q[ok]
        self.images += 1

    def result(self) -> dict[str, float]:
        """``{"one_color", "one_light", "all_color", "all_light"}`` (``nan`` if empty)."""
        seen = self.pixels > 0
        if not seen.any():
            return dict.fromkeys(KEYS, float("nan"))
        n = self.pixels[seen, None].astype(np.float64)
        mean = self.sum[seen] / n
        std_all = np.sqrt(np.clip(self.sumsq[seen] / n - mean ** 2, 0.0, None))
        pooled = np.stack([std_all[:, :3].mean(axis=1), std_all[:, 3]], axis=1)
        if self.reduction == "present":
            per_class_one = self.one_sum[seen] / self.one_count[seen, None]
            one, alls = per_class_one.mean(axis=0), pooled.mean(axis=0)
        else:
            channels = max(int(self.num_classes or 0), int(seen.sum()))
            one = (self.one_sum[seen] / self.images).sum(axis=0) / channels
            alls = pooled.sum(axis=0) / channels
        return {"one_color": float(one[0]), "one_light": float(one[1]),
                "all_color": float(alls[0]), "all_light": float(alls[1])}


@register_metric("icv")
class IntraClassVariationMetric(Metric):
    """VASIS intra-class variation of the generated images (and of the photos, if any).

    Results: ``icv_one_color``, ``icv_one_light``, ``icv_all_color``, ``icv_all_light``
    and the same with ``icv_real_`` for the photos.
    """

    needs_photos = True  # used when the source has photos; not required

    def __init__(self, options: MetricOptions):
        self.fake = IntraClassVariation(options.icv_reduction)
        self.real = IntraClassVariation(options.icv_reduction)

    def update(self, batch: EvalBatch) -> None:
        """Add the batch's generated images and photos with their label maps."""
        if batch.vocabulary is not None and self.fake.num_classes is None:
            self.fake.num_classes = self.real.num_classes = len(batch.vocabulary)
        for i, lm in enumerate(batch.labelmaps):
            self.fake.update(batch.images[i], lm.semantic)
            if batch.photos is not None:
                self.real.update(batch.photos[i], lm.semantic)

    def result(self) -> dict[str, Any]:
        """The four statistics for generated images, and for photos when seen."""
        out = {f"icv_{k}": v for k, v in self.fake.result().items()}
        if self.real.images:
            out.update({f"icv_real_{k}": v for k, v in self.real.result().items()})
        return out
