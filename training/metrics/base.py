"""What every metric shares: options, the batch it sees, the registry.

A metric is a small accumulator: built once from :class:`MetricOptions`, fed
:class:`EvalBatch` es (label maps, the images generated from them, the paired photos)
by :func:`sisgen.training.metrics.compute_metrics`, asked for its :meth:`Metric.result`
at the end. Images are generated once per batch and shared by every metric of a run;
metrics that need more samples per map (diversity) call the batch's generator
themselves.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from sisgen.labelmap import LabelMap
from sisgen.registry import Registry
from sisgen.vocab import Vocabulary

#: Metric classes by name (``@register_metric``).
_METRICS: Registry[type[Metric]] = Registry("metric")


@dataclass
class MetricOptions:
    """Settings of an evaluation; each metric reads the fields it needs.

    Attributes:
        batch_size: Label maps per generator / feature-extractor call.
        device: Torch device of the metric networks (Inception, LPIPS, segmenter).
        seed: Run seed; sample ``i`` is generated with ``sample_seed(seed, i)`` as in
            ``sisgen generate``.
        inception_weights: Local FID Inception weights file (see :mod:`.inception`).
        fid_protocol: ``"pytorch-fid"`` or ``"torch-fidelity"`` preprocessing.
        fid_reference: ``.npz`` of precomputed real statistics (``mu``, ``sigma``); when
            set, no photos are read for FID.
        fid_save_reference: Write the real statistics of this run to this ``.npz``.
        feature_extractor: A callable ``uint8 [B,3,H,W] -> [B, D]`` used instead of the
            Inception (tests, other feature spaces).
        segmenter: A :class:`sisgen.segmenter.Segmenter`, a callable ``images -> ids``, or
            a TorchScript/ONNX file.
        seg_mean: Segmenter input mean (used when ``segmenter`` is a file). ``None``: the
            file's metadata sidecar, else ImageNet's (0.485, 0.456, 0.406)
            (:func:`sisgen.segmenter.segmenter_inputs`).
        seg_std: Segmenter input std (``None``: the sidecar, else ImageNet's
            (0.229, 0.224, 0.225)).
        seg_input_range: What uint8 0..255 maps to before ``seg_mean``/``seg_std``
            (``None``: the sidecar, else (0, 1)).
        remap: Remap table applied to the ground truth before scoring (name, file, Remap).
        lpips_net: ``"vgg"`` or ``"alex"`` LPIPS trunk.
        lpips_weights: The lpips package's linear-layer file (``vgg.pth``/``alex.pth``).
        lpips_trunk: torchvision ImageNet state dict of the trunk (vgg16 / alexnet).
        lpips: A prebuilt LPIPS module (overrides the two files).
        diversity_samples: Images generated per label map for the diversity metric.
        icv_reduction: ``"present"`` or ``"vasis"`` averaging (see :mod:`.variation`).
    """

    batch_size: int = 8
    device: str | torch.device = "cpu"
    seed: int = 0
    inception_weights: str | os.PathLike | None = None
    fid_protocol: str = "pytorch-fid"
    fid_reference: str | os.PathLike | None = None
    fid_save_reference: str | os.PathLike | None = None
    feature_extractor: Callable[[torch.Tensor], torch.Tensor] | None = None
    segmenter: Any = None
    seg_mean: Sequence[float] | None = None
    seg_std: Sequence[float] | None = None
    seg_input_range: tuple[float, float] | None = None
    remap: Any = None
    lpips_net: str = "vgg"
    lpips_weights: str | os.PathLike | None = None
    lpips_trunk: str | os.PathLike | None = None
    lpips: torch.nn.Module | None = None
    diversity_samples: int = 4
    icv_reduction: str = "present"

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> MetricOptions:
        """Build from keyword arguments, rejecting unknown names with the valid ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(kwargs) - known)
        if unknown:
            raise TypeError(f"unknown metric option(s) {', '.join(unknown)}; "
                            f"known: {', '.join(sorted(known))}")
        return cls(**kwargs)


@dataclass
class EvalBatch:
    """One batch of an evaluation run.

    Attributes:
        labelmaps: Label maps at the generated images' size.
        images: The generated ``H×W×3`` uint8 images, one per label map.
        photos: The paired real photos at the same size, or ``None`` when there are none.
        seeds: The seeds the images were generated with.
        indices: Sample positions in the run.
        generator: The generator (``None`` when evaluating given images).
        vocabulary: The label maps' vocabulary, when known.
    """

    labelmaps: list[LabelMap]
    images: list[np.ndarray]
    photos: list[np.ndarray] | None = None
    seeds: list[int] = field(default_factory=list)
    indices: list[int] = field(default_factory=list)
    generator: Any = None
    vocabulary: Vocabulary | None = None


class Metric:
    """Base class: accumulate over :class:`EvalBatch` es, then report.

    Subclasses take ``(options: MetricOptions)`` and set :attr:`needs_photos` /
    :attr:`needs_generator` when they use the batch's photos / generator.
    """

    name: str = ""
    needs_photos: bool = False
    needs_generator: bool = False

    def update(self, batch: EvalBatch) -> None:
        """Account for one batch."""
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        """The scores so far (JSON-ready: floats, ints, dicts of them)."""
        raise NotImplementedError


def register_metric(name: str) -> Callable[[type[Metric]], type[Metric]]:
    """Class decorator: make a :class:`Metric` available by ``name`` (its ``name``)."""
    return _METRICS.register(name, attr="name")


def available_metrics() -> list[str]:
    """Names of the registered metrics."""
    return _METRICS.names()


def get_metric(name: str) -> type[Metric]:
    """The metric class registered as ``name``.

    Raises:
        SisgenInputError: ``unknown metric 'name'; known: ...``.
    """
    return _METRICS.get(name)


def images_to_tensor(images: Sequence[np.ndarray], device: str | torch.device = "cpu"
                     ) -> torch.Tensor:
    """``H×W×3`` uint8 images (one size) -> a uint8 tensor ``[B,3,H,W]`` on ``device``."""
    x = np.stack([np.asarray(im) for im in images])
    if x.ndim != 4 or x.shape[-1] != 3 or x.dtype != np.uint8:
        raise ValueError(f"images must be H×W×3 uint8, got {x.shape} {x.dtype}")
    return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))).to(device)
