"""Adapters to where synthetic images are used (import as ``sisgen.integrations``).

* :class:`SynthesisDataset` -- a PyTorch ``IterableDataset`` synthesizing labeled images on
  the fly, worker- and rank-sharded, seeded per sample.
* :class:`LabeledDataset` -- (photo, label) pairs of any source with photos, e.g. a
  curated generated dataset with its ignore pixels.
* :class:`SyntheticSwap` -- a label-preserving augmentation replacing photos by synthetic
  images of their own label maps.
* :class:`MixedDataset` / :class:`MixedIterableDataset` -- real and synthetic samples at a
  ratio, deterministic per seed and epoch.
* :func:`register_mmseg_dataset`, :func:`register_detectron2`, :func:`load_hf_dataset` --
  registration with frameworks that are imported only when used.
"""

from __future__ import annotations

from .augment import SyntheticSwap
from .dataset import LazyGenerator, SynthesisDataset, SynthesisMapDataset, shard
from .labeled import LabeledDataset
from .mixing import MixedDataset, MixedIterableDataset, epoch_plan
from .registration import (
    MissingDependencyError,
    load_hf_dataset,
    register_detectron2,
    register_mmseg_dataset,
)

__all__ = [
    "LabeledDataset",
    "LazyGenerator",
    "MissingDependencyError",
    "MixedDataset",
    "MixedIterableDataset",
    "SynthesisDataset",
    "SynthesisMapDataset",
    "SyntheticSwap",
    "epoch_plan",
    "load_hf_dataset",
    "register_detectron2",
    "register_mmseg_dataset",
    "shard",
]
