"""Which classes of a synthetic set teach a segmenter something that holds on real photos.

A generator can render most classes well and a few badly (thin, small or rare ones). A
segmenter trained on its images then learns those few wrong, and mixing the images into a
real training set hurts exactly there. :func:`class_transfer` measures it per class with
real pairs only (no test set):

* the real pairs are split in two: the first part trains, the last ``holdout`` part scores;
* a segmenter trained on the synthetic set alone is scored on the held-out real part
  (``synthetic_to_real`` IoU) and so is one trained on the first real part (``real_to_real``,
  the level real data of about that size reaches), with the same steps, batch and seed;
* ``ratio = synthetic_to_real / real_to_real`` per class.

:meth:`ClassTransfer.poor_classes` lists the classes below a ratio (e.g. 0.8); reading the
synthetic set with ``LabeledDataset(..., ignore_classes=...)`` writes their pixels as
ignore, so a mixed training learns them from the real photos only. The synthetic images'
label maps should not be those of the held-out part (use layouts beyond the real set, or
maps of the training part), or their layouts leak into the score.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset, Subset

from sisgen.errors import SisgenInputError
from sisgen.io import read_json, write_json
from sisgen.vocab import Vocabulary

from .evaluate import evaluate_segmenter
from .trainer import train_segmenter

__all__ = ["ClassTransfer", "class_transfer"]


@dataclass
class ClassTransfer:
    """Per-class IoU of a synthetic-trained and a real-trained segmenter on real pairs.

    See the module docstring.

    Attributes:
        vocabulary: Name of the classes' vocabulary.
        classes: Class name -> ``{"synthetic_to_real", "real_to_real", "ratio"}`` (IoU in
            percent; ``None`` where the held-out pairs do not have the class).
        config: How it was measured (steps, seed, split sizes, ...).
    """

    vocabulary: str
    classes: dict[str, dict[str, float | None]]
    config: dict[str, Any] = field(default_factory=dict)

    def poor_classes(self, below: float) -> list[str]:
        """Names of the classes whose ratio is below ``below`` (unmeasured ones are kept)."""
        return [name for name, v in self.classes.items()
                if v["ratio"] is not None and v["ratio"] < below]

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (what :meth:`save` writes)."""
        return {"vocabulary": self.vocabulary, "classes": self.classes, "config": self.config}

    def save(self, path: str | os.PathLike) -> None:
        """Write the JSON file (atomically)."""
        write_json(path, self.to_dict(), indent=1)

    @classmethod
    def load(cls, path: str | os.PathLike, vocabulary: Vocabulary | None = None
             ) -> ClassTransfer:
        """Read a file that :meth:`save` wrote.

        Raises:
            SisgenInputError: Not such a file, or one measured on another vocabulary than
                ``vocabulary``.
        """
        data = read_json(path)
        if not isinstance(data, dict) or not isinstance(data.get("classes"), dict):
            raise SisgenInputError("not a class transfer file (no 'classes')", path)
        out = cls(str(data.get("vocabulary")), data["classes"], data.get("config", {}))
        if vocabulary is not None:
            if out.vocabulary != vocabulary.name or not set(out.classes) <= set(vocabulary.names):
                raise SisgenInputError(
                    f"class transfer of vocabulary {out.vocabulary!r}, but the data's is "
                    f"{vocabulary.name!r}", Path(path))
        return out


def class_transfer(synthetic: Dataset, real: Dataset, *, holdout: float = 0.5,
                   steps: int = 400, batch_size: int = 16, seed: int = 0,
                   size: tuple[int, int] | None = None, width: int = 16,
                   threads: int | None = 1) -> ClassTransfer:
    """Measure how each class of ``synthetic`` transfers to ``real`` photos.

    Args:
        synthetic: Labeled synthetic items (e.g. a ``LabeledDataset`` of a folder dataset
            that ``sisgen generate`` wrote).
        real: Labeled real pairs with a ``vocabulary`` (e.g. a ``LabeledDataset``).
        holdout: Share of ``real`` (its last items) that scores both segmenters.
        steps: Training steps of each segmenter.
        batch_size: Items per step.
        seed: Seed of both segmenters.
        size: Training size (``None``: the first item's).
        width: Segmenter width.
        threads: Torch threads of the training and scoring.

    Raises:
        SisgenInputError: Vocabularies that differ, or too few real pairs to split.
    """
    vocab = getattr(real, "vocabulary", None)
    if vocab is None:
        raise SisgenInputError("class_transfer needs real pairs with a vocabulary")
    other = getattr(synthetic, "vocabulary", None)
    if other is not None and other.ids != vocab.ids:
        raise SisgenInputError(f"the synthetic set's vocabulary {other.name!r} is not the "
                               f"real pairs' {vocab.name!r}")
    n = len(real)
    cut = n - round(n * holdout)
    if not 0 < cut < n:
        raise SisgenInputError(f"cannot hold out {holdout:g} of {n} real pairs")
    train, scored = Subset(real, range(cut)), Subset(real, range(cut, n))
    common = {"steps": steps, "seed": seed, "size": size, "width": width, "threads": threads,
              "vocabulary": vocab}
    s_net, _ = train_segmenter([(synthetic, batch_size)], **common)
    r_net, _ = train_segmenter([(train, batch_size)], **common)
    s_iou = evaluate_segmenter(s_net, scored, vocabulary=vocab, threads=threads)["iou"]
    r_iou = evaluate_segmenter(r_net, scored, vocabulary=vocab, threads=threads)["iou"]
    classes: dict[str, dict[str, float | None]] = {}
    for name in vocab.names:
        s, r = s_iou.get(name), r_iou.get(name)
        ratio = round(s / r, 3) if s is not None and r else None
        classes[name] = {"synthetic_to_real": None if s is None else round(s, 2),
                         "real_to_real": None if r is None else round(r, 2), "ratio": ratio}
    config = {"holdout": holdout, "real_train": cut, "real_scored": n - cut,
              "synthetic": len(synthetic), "steps": steps, "batch_size": batch_size,
              "seed": seed, "width": width}
    return ClassTransfer(vocab.name, classes, config)
