"""Fréchet Inception Distance between generated images and real photos.

FID (Heusel et al., 2017) fits a Gaussian to the pool3 features of the FID Inception-v3
(:mod:`.inception`) on each image set and reports the Fréchet distance between the two
(:mod:`.frechet`). SIS papers compute it between the images generated from a validation
split's label maps and that split's photos, both at the generator's resolution; that is
what this metric does. Features stream into running float64 statistics, so the number of
images is bounded only by time.

Real statistics can be precomputed once (``fid_save_reference=`` writes them,
``fid_reference=`` reads them back; pytorch-fid's ``.npz`` files with ``mu``/``sigma``
load as well), which skips reading and encoding the photos on every evaluation.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sisgen.errors import SisgenInputError

from .base import EvalBatch, Metric, MetricOptions, images_to_tensor, register_metric
from .frechet import FeatureStats, stats_distance
from .inception import WEIGHT_FILES, load_inception


def build_extractor(options: MetricOptions) -> Any:
    """The options' feature extractor, or the FID Inception loaded from its local file.

    Raises:
        SisgenInputError: Neither a feature extractor nor an Inception weights file was given.
    """
    if options.feature_extractor is not None:
        return options.feature_extractor
    if options.inception_weights is None:
        raise SisgenInputError(
            f"the fid metric needs the FID Inception weights file ({WEIGHT_FILES[0]} or "
            f"{WEIGHT_FILES[1]}) as inception_weights= / --inception-weights; nothing is "
            "downloaded")
    return load_inception(options.inception_weights, options.fid_protocol, options.device)


@register_metric("fid")
class FIDMetric(Metric):
    """FID of the generated images against the photos (or a saved reference).

    Results: ``fid``, ``fid_images`` (generated) and ``fid_real_images``.
    """

    def __init__(self, options: MetricOptions):
        self.extractor = build_extractor(options)
        self.device = options.device
        self.save_reference = options.fid_save_reference
        self.reference = options.fid_reference is not None
        self.real = FeatureStats.load(options.fid_reference) if self.reference else FeatureStats()
        self.fake = FeatureStats()
        self.needs_photos = not self.reference

    def features(self, images: list[np.ndarray]) -> torch.Tensor:
        """Feature vectors ``[B, D]`` of ``H×W×3`` uint8 images."""
        with torch.inference_mode():
            out = self.extractor(images_to_tensor(images, self.device))
        if out.ndim != 2 or out.shape[0] != len(images):
            raise ValueError(f"feature extractor must return B×D, got {tuple(out.shape)}")
        return out

    def update(self, batch: EvalBatch) -> None:
        """Add the batch's generated images (and photos, without a reference)."""
        self.fake.update(self.features(batch.images))
        if not self.reference:
            if batch.photos is None:
                raise SisgenInputError("FID needs real photos: this source has none; give "
                                 "precomputed statistics with fid_reference= / --fid-reference")
            self.real.update(self.features(batch.photos))

    def result(self) -> dict[str, Any]:
        """``{"fid", "fid_images", "fid_real_images"}``; writes the reference if asked."""
        if self.save_reference is not None and not self.reference:
            self.real.save(self.save_reference)
        return {"fid": stats_distance(self.real, self.fake), "fid_images": self.fake.count,
                "fid_real_images": self.real.count}
