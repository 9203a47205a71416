"""Evaluation metrics of SIS generators, one module each, behind a small registry.

* ``fid`` -- FID against the source's photos (:mod:`.fid`); needs the Inception weights.
* ``miou`` -- mIoU and pixel accuracy of a segmenter (:mod:`.segmentation`); needs a
  TorchScript/ONNX segmenter.
* ``diversity`` -- mean LPIPS between renders with different seeds (:mod:`.diversity`);
  needs the LPIPS weights.
* ``icv`` -- VASIS intra-class variation (:mod:`.variation`); needs nothing.

Every pretrained network takes a local file; nothing is downloaded. Use it after training
(``sisgen eval``) or during it::

    from sisgen.training.metrics import compute_metrics
    scores = compute_metrics(["fid", "miou"], generator=model, source=val_source,
                             limit=500, inception_weights="pt_inception-2015-12-05.pth",
                             segmenter="drn105_cityscapes.pt",
                             remap="cityscapes->cityscapes_trainid")

``generator`` is a loaded :class:`sisgen.engines.Generator` (``sisgen.load``) or a
sisgen generator module (run in eval mode through the torch engine). Instead of a
source, ``labelmaps=`` (and ``photos=``) iterables may be given; instead of a generator,
``images=`` evaluates images generated earlier. A new metric subclasses
:class:`Metric` and registers with ``@register_metric("name")``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from sisgen.engines.base import Generator
from sisgen.errors import SisgenInputError
from sisgen.labelmap import LabelMap
from sisgen.samples import SamplePath, run_engine, sample_seed
from sisgen.sources.base import Source
from sisgen.vocab import Vocabulary

from . import diversity, fid, segmentation, variation  # noqa: F401  (register the metrics)
from .base import (
    EvalBatch,
    Metric,
    MetricOptions,
    available_metrics,
    get_metric,
    register_metric,
)
from .frechet import FeatureStats, frechet_distance

__all__ = ["EvalBatch", "FeatureStats", "Metric", "MetricOptions", "available_metrics",
           "compute_metrics", "frechet_distance", "get_metric", "register_metric"]

_Sample = tuple[LabelMap | None, np.ndarray | None, np.ndarray | None]


def _as_generator(generator: Any, device: str | torch.device) -> Generator | None:
    """A :class:`Generator` as is; a sisgen model module wrapped in the torch engine."""
    if generator is None or isinstance(generator, Generator):
        return generator
    if isinstance(generator, torch.nn.Module):
        from sisgen.engines.torch_engine import TorchEngine

        # scored during training too: no pass over the weights for a manifest hash
        return Generator.from_model(TorchEngine(generator, device), generator, model_hash="")
    raise TypeError(f"generator must be a sisgen Generator or model, got {type(generator)}")


def _samples(source: Source | None, labelmaps: Iterable[Any] | None,
             photos: Iterable[np.ndarray | None] | None, images: Iterable[np.ndarray] | None,
             want_photos: bool, load_maps: bool = True) -> Iterator[_Sample]:
    """``(label map, photo or None, given image or None)`` per sample.

    With ``load_maps=False`` a source's maps are left to the sample path (``None``).
    """
    if source is not None:
        for i in range(len(source)):
            yield (source[i] if load_maps else None,
                   source.photo(i) if want_photos else None, None)
        return
    if labelmaps is None:
        raise ValueError("give a source or labelmaps= to evaluate")
    photo_it = iter(photos) if photos is not None else itertools.repeat(None)
    image_it = iter(images) if images is not None else itertools.repeat(None)
    for lm in labelmaps:
        lm = lm if isinstance(lm, LabelMap) else LabelMap(np.asarray(lm))
        yield lm, next(photo_it, None), next(image_it, None)


def _fit(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an RGB image to ``(H, W)``: area filter when shrinking, bilinear otherwise."""
    image = np.asarray(image)
    if image.shape[:2] == tuple(size):
        return image
    shrink = image.shape[0] > size[0] or image.shape[1] > size[1]
    return cv2.resize(image, (size[1], size[0]),
                      interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _batches(samples: Iterator[_Sample], batch_size: int, limit: int | None
             ) -> Iterator[list[_Sample]]:
    if limit is not None:
        samples = itertools.islice(samples, limit)
    while chunk := list(itertools.islice(samples, batch_size)):
        yield chunk


def compute_metrics(names: str | Sequence[str], generator: Any = None,
                    source: Source | None = None, *,
                    labelmaps: Iterable[LabelMap | np.ndarray] | None = None,
                    photos: Iterable[np.ndarray | None] | None = None,
                    images: Iterable[np.ndarray] | None = None,
                    limit: int | None = None, vocabulary: Vocabulary | None = None,
                    options: MetricOptions | None = None, **option_values: Any
                    ) -> dict[str, Any]:
    """Evaluate a generator (or given images) on label maps with the named metrics.

    Each batch of label maps is resized to the generator's resolution and rendered once
    (sample ``i`` with seed ``sample_seed(seed, i)``); photos are resized to the same
    size; every metric sees the same batches.

    Args:
        names: Metric names (a list or a comma-separated string; see
            :func:`available_metrics`).
        generator: A :class:`~sisgen.engines.Generator` or a sisgen model module.
        source: Label maps (and photos, via ``source.photo(i)``) to evaluate on.
        labelmaps: Instead of ``source``: label maps (``LabelMap`` or ``H×W`` arrays).
        photos: With ``labelmaps``: the paired real photos.
        images: Instead of ``generator``: images already generated from ``labelmaps``.
        limit: Use only the first ``limit`` samples.
        vocabulary: The label maps' vocabulary (default: the source's or generator's).
        options: A :class:`MetricOptions`; or give its fields as keyword arguments.
        **option_values: :class:`MetricOptions` fields (``inception_weights=``, ...).

    Returns:
        The metrics' results merged into one dict, plus ``"images"`` (samples evaluated).

    Raises:
        ValueError: Unknown metric, missing input a metric needs, or no samples.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    if not names:
        raise ValueError(f"no metrics named; available: {', '.join(available_metrics())}")
    classes = [get_metric(n) for n in names]
    if options is None:
        options = MetricOptions.from_kwargs(**option_values)
    elif option_values:
        raise TypeError("give options= or option keyword arguments, not both")
    gen = _as_generator(generator, options.device)
    if gen is None and images is None:
        raise ValueError("give a generator, or images= generated earlier")
    metrics: list[Metric] = [cls(options) for cls in classes]
    if gen is None and any(m.needs_generator for m in metrics):
        raise ValueError("metric(s) " + ", ".join(m.name for m in metrics if m.needs_generator)
                         + " render label maps with several seeds and need a generator")
    if vocabulary is None:
        vocabulary = source.vocabulary if source is not None else getattr(gen, "vocabulary",
                                                                          None)
    want_photos = any(m.needs_photos for m in metrics)
    # a source rendered by a generator goes through the one sample path (as generate does)
    path = None if source is None or gen is None else SamplePath(
        source, None, tuple(gen.resolution), seed=options.seed,
        input_spec=getattr(gen, "input_spec", None))
    count = 0
    for chunk in _batches(_samples(source, labelmaps, photos, images, want_photos,
                                   load_maps=path is None),
                          max(1, options.batch_size), limit):
        indices = list(range(count, count + len(chunk)))
        seeds = [sample_seed(options.seed, i) for i in indices]
        if path is not None:
            size = tuple(gen.resolution)
            prepared = path.prepare(indices)
            if prepared.errors:
                raise SisgenInputError(prepared.errors[0]["error"],
                                       prepared.errors[0].get("file"))
            maps = [s.labelmap for s in prepared.samples]
            generated = list(run_engine(gen, prepared))
        elif gen is not None:
            size = tuple(gen.resolution)
            maps = [lm.resized(size) for lm, _, _ in chunk]
            generated = gen.generate(maps, seeds)
        else:
            generated = [np.asarray(im) for _, _, im in chunk]
            if any(im is None or im.ndim != 3 for im in generated):
                raise ValueError("images= must give one H×W×3 image per label map")
            size = generated[0].shape[:2]
            maps = [lm.resized(size) for lm, _, _ in chunk]
        real = [p for _, p, _ in chunk]
        batch = EvalBatch(maps, generated,
                          None if any(p is None for p in real) else [_fit(p, size) for p in real],
                          seeds, indices, gen, vocabulary)
        for m in metrics:
            m.update(batch)
        count += len(chunk)
    if count == 0:
        raise ValueError("no samples to evaluate")
    out: dict[str, Any] = {}
    for m in metrics:
        out.update(m.result())
    out["images"] = count
    return out
