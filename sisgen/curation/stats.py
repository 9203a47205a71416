"""Reference statistics: a segmenter's per-class loss on real (photo, label) pairs.

FreeMask's loss filter needs, for every class, the segmenter's mean cross-entropy on *real*
pixels of that class: a synthetic pixel whose loss is well above what real pixels of its
class cost is probably drawn wrong. :func:`compute_reference_stats` runs a
:class:`~sisgen.segmenter.Segmenter` over the photos of any source and accumulates, per
class, the summed loss, the pixel count and the correctly predicted pixels;
:class:`ReferenceStats` saves and loads them as JSON::

    {"format": "sisgen-reference-stats", "version": 1,
     "vocabulary": {"name", "ids", "names"}, "segmenter": "seg.onnx",
     "source": {"kind", "split", "len", "maps"}, "size": [H, W] | null, "images": n,
     "pixels": n, "mean_loss": x,
     "classes": [{"id", "name", "pixels", "mean_loss", "accuracy"}, ...],
     "skipped": [{"index", "file", "error"}, ...]}

Pixels labelled 255, and pixels of a class no segmenter channel predicts, are not counted;
a class without pixels has ``mean_loss: null`` (the loss filter then never ignores it).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import SisgenInputError
from ..io import read_json, write_json
from ..runs import vocabulary_record
from ..segmenter import Segmenter
from ..sources import Source
from ..vocab import Vocabulary
from .pairs import batched, photo_pairs

STATS_FORMAT = "sisgen-reference-stats"


def source_description(source: Source, maps: int) -> dict[str, Any]:
    """What the curation files record about a source: kind, split, length, maps used."""
    return {"kind": source.kind, "split": getattr(source, "split", None),
            "len": len(source), "maps": int(maps)}


def check_vocabulary_record(record: dict[str, Any], vocabulary: Vocabulary, what: str,
                            path: str | os.PathLike | None, kind: str) -> None:
    """Raise when a file's recorded vocabulary (name, ids, names) is not ``vocabulary``.

    Args:
        record: The file's ``vocabulary`` record.
        vocabulary: The run's vocabulary.
        what: Names the run's data in the message.
        path: The file (named in the error).
        kind: What the file is (``"statistics file"``, ``"plan"``).
    """
    mine = vocabulary_record(vocabulary)
    if record.get("ids") != mine["ids"] or record.get("names") != mine["names"]:
        raise SisgenInputError(
            f"this {kind} is for vocabulary {record.get('name')!r} "
            f"({len(record.get('ids') or [])} classes), not {what}'s {vocabulary.name!r} "
            f"({len(vocabulary)} classes)", path)


@dataclass
class ReferenceStats:
    """Per-class loss statistics of a segmenter on real images (module docstring).

    Attributes:
        vocabulary: The data's vocabulary record ``{"name", "ids", "names"}``.
        loss_sum: Summed cross-entropy per class id (256 entries, float64).
        pixels: Scored pixels per class id (256 entries).
        correct: Correctly predicted pixels per class id (256 entries).
        images: Images scored.
        segmenter: The segmenter file (or description) the losses come from.
        source: The source (:func:`source_description`).
        size: ``(H, W)`` the pairs were scored at, or ``None`` (the maps' own size).
        skipped: Error records of the maps that could not be read.
        path: The file these statistics were loaded from or saved to.
    """

    vocabulary: dict[str, Any]
    loss_sum: np.ndarray = field(default_factory=lambda: np.zeros(256, np.float64))
    pixels: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    correct: np.ndarray = field(default_factory=lambda: np.zeros(256, np.int64))
    images: int = 0
    segmenter: str | None = None
    source: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)
    path: str | None = None

    def add(self, loss: np.ndarray, prediction: np.ndarray, labels: np.ndarray) -> None:
        """Accumulate one batch: ``[B,H,W]`` losses (``nan``: not scored), predictions, labels."""
        scored = np.isfinite(loss)
        lab = labels[scored].astype(np.int64)
        self.loss_sum += np.bincount(lab, weights=loss[scored].astype(np.float64), minlength=256)
        self.pixels += np.bincount(lab, minlength=256)
        self.correct += np.bincount(lab[prediction[scored] == lab], minlength=256)
        self.images += len(loss)

    @property
    def class_loss(self) -> dict[int, float | None]:
        """Mean loss per class id of the vocabulary (``None``: no pixels seen)."""
        return {int(c): (float(self.loss_sum[c] / self.pixels[c]) if self.pixels[c] else None)
                for c in self.vocabulary["ids"]}

    @property
    def mean_loss(self) -> float:
        """Mean loss over every scored pixel (``nan`` when none)."""
        total = int(self.pixels.sum())
        return float(self.loss_sum.sum() / total) if total else math.nan

    def check_vocabulary(self, vocabulary: Vocabulary, what: str = "the data") -> None:
        """Raise :class:`SisgenInputError` naming the file when ``vocabulary`` differs."""
        check_vocabulary_record(self.vocabulary, vocabulary, what,
                                self.path or "reference statistics", "statistics file")

    # ------------------------------------------------------------------ files
    def to_dict(self) -> dict[str, Any]:
        """The JSON form (module docstring)."""
        classes = []
        for c, name in zip(self.vocabulary["ids"], self.vocabulary["names"], strict=True):
            n = int(self.pixels[c])
            classes.append({"id": int(c), "name": name, "pixels": n,
                            "mean_loss": float(self.loss_sum[c] / n) if n else None,
                            "accuracy": float(self.correct[c] / n) if n else None})
        mean = self.mean_loss
        return {"format": STATS_FORMAT, "version": 1, "vocabulary": self.vocabulary,
                "segmenter": self.segmenter, "source": self.source,
                "size": None if self.size is None else list(self.size), "images": self.images,
                "pixels": int(self.pixels.sum()), "mean_loss": None if math.isnan(mean) else mean,
                "classes": classes, "skipped": self.skipped}

    def save(self, path: str | os.PathLike) -> None:
        """Write the statistics as JSON (atomically)."""
        write_json(path, self.to_dict(), indent=1)
        self.path = os.fspath(path)

    @classmethod
    def load(cls, path: str | os.PathLike, vocabulary: Vocabulary | None = None
             ) -> ReferenceStats:
        """Read statistics saved by :meth:`save`.

        Args:
            path: The JSON file.
            vocabulary: The run's vocabulary: the file's must be the same (ids and names).

        Raises:
            SisgenInputError: Not a statistics file, malformed, or for another vocabulary;
                names the file.
        """
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != STATS_FORMAT:
            raise SisgenInputError(f"not a reference statistics file (format must be "
                                   f"{STATS_FORMAT!r}; make one with `sisgen curate stats`)",
                                   path)
        if data.get("version") != 1:
            raise SisgenInputError(f"unsupported statistics version {data.get('version')!r}",
                                   path)
        try:
            stats = cls(vocabulary=dict(data["vocabulary"]), images=int(data["images"]),
                        segmenter=data.get("segmenter"), source=dict(data.get("source") or {}),
                        size=None if data.get("size") is None else tuple(data["size"]),
                        skipped=list(data.get("skipped") or []), path=os.fspath(path))
            for entry in data["classes"]:
                c, n = int(entry["id"]), int(entry["pixels"])
                if not 0 <= c < 255 or n < 0:
                    raise ValueError(f"bad class entry {entry}")
                stats.pixels[c] = n
                if n:
                    stats.loss_sum[c] = float(entry["mean_loss"]) * n
                    stats.correct[c] = round(float(entry.get("accuracy") or 0.0) * n)
        except (KeyError, TypeError, ValueError) as e:
            raise SisgenInputError(f"malformed reference statistics ({e!r})", path) from None
        if vocabulary is not None:
            stats.check_vocabulary(vocabulary, "the run")
        return stats


def compute_reference_stats(segmenter: Segmenter, source: Source, *, limit: int | None = None,
                            size: tuple[int, int] | None = None, batch_size: int = 8,
                            progress: bool = False) -> ReferenceStats:
    """Per-class mean cross-entropy of ``segmenter`` on the real photos of ``source``.

    Args:
        segmenter: The segmenter (its classes must be the source's,
            :meth:`Segmenter.check_vocabulary`).
        source: A source with photos.
        limit: Use only the first ``limit`` maps.
        size: Score at this ``(H, W)`` -- best the generator's resolution, where the
            synthetic images will be judged (labels resized nearest, photos area).
            Default: the maps' own size.
        batch_size: Maps per segmenter call.
        progress: Show a progress bar.

    Returns:
        The :class:`ReferenceStats`; maps that cannot be read are skipped and listed.

    Raises:
        SisgenInputError: The segmenter's classes do not match, or no map could be scored.
    """
    vocab = source.vocabulary
    segmenter.check_vocabulary(vocab, f"the {source.kind} source")
    maps = len(source) if limit is None else min(int(limit), len(source))
    stats = ReferenceStats(vocabulary=vocabulary_record(vocab),
                           segmenter=segmenter.path or repr(segmenter),
                           source=source_description(source, maps),
                           size=None if size is None else (int(size[0]), int(size[1])))
    for batch, errors in batched(photo_pairs(source, size), maps, batch_size, progress,
                                 desc="reference stats"):
        stats.skipped += errors
        if batch:
            labels = np.stack([p[2] for p in batch])
            loss, pred = segmenter.loss_and_prediction([p[1] for p in batch], labels)
            stats.add(loss, pred, labels)
    if not stats.images:
        first = stats.skipped[0] if stats.skipped else {}
        raise SisgenInputError(f"no map of the {source.kind} source could be scored "
                               f"({first.get('error', 'no maps')})", first.get("file"))
    return stats
