"""Curation: the loop that makes synthetic data help a segmenter (after FreeMask).

* :mod:`.stats` -- :func:`compute_reference_stats`: a segmenter's per-class mean loss on
  real (photo, label) pairs, saved as JSON (:class:`ReferenceStats`); the loss-based pixel
  filter (:class:`sisgen.filtering.QualityFilter`, ``mode="loss"``) reads it;
* :mod:`.plan` -- :class:`Plan`: samples per label map, a JSON file that
  ``sisgen generate --plan`` and :class:`~sisgen.integrations.SynthesisDataset` follow;
* :mod:`.hardness` -- :func:`hardness_plan`: more samples of the maps the segmenter finds
  hard (FreeMask's rank rule), scored on real photos or a first synthetic pass;
* :mod:`.balance` -- :func:`balance_plan`: more samples of maps showing rare classes,
  alone or on top of a hardness plan;
* :mod:`.paste_balance` -- :func:`paste_balance_recipe`: ``paste`` steps that add
  instances of the classes below their target pixel share (with the shares measured after);
* :mod:`.pairs` -- the (image, label) pairs these read.

Typical use::

    seg = Segmenter("seg.onnx")                          # sidecar seg.onnx.json read
    stats = compute_reference_stats(seg, real_source, size=(64, 128))
    stats.save("stats.json")
    plan = hardness_plan(seg, layouts, max_samples=4, generator=gen, stats=stats)
    plan = balance_plan(layouts, base=plan)              # "hardness+balance"
    plan.save("plan.json")
    qf = QualityFilter(seg, mode="loss", reference=stats, min_miou=0.0)
    generate(gen, layouts, "out", plan=plan, quality_filter=qf)
"""

from __future__ import annotations

from .balance import balance_counts, balance_plan, class_pixels, target_shares
from .hardness import hardness_plan, hardness_scores, rank_counts
from .pairs import image_pairs, photo_pairs, synthetic_pairs
from .paste_balance import paste_balance_recipe
from .plan import Plan
from .stats import ReferenceStats, compute_reference_stats

__all__ = ["Plan", "ReferenceStats", "balance_counts", "balance_plan", "class_pixels",
           "compute_reference_stats", "hardness_plan", "hardness_scores", "image_pairs",
           "paste_balance_recipe", "photo_pairs", "rank_counts", "synthetic_pairs",
           "target_shares"]
