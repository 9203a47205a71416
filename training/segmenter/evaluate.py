"""Score a segmenter on labeled images: mIoU, pixel accuracy and per-class IoU (percent).

One :class:`~sisgen.training.metrics.segmentation.ConfusionMatrix` is accumulated over the
whole set (dataset-level scores, as the segmentation benchmarks report them): IoU of a
class = TP / (TP + FP + FN); mIoU averages the classes that occur in the ground truth or
the prediction; ground-truth pixels of 255 are left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sisgen.errors import SisgenInputError
from sisgen.segmenter import Segmenter
from sisgen.sources import Source
from sisgen.vocab import Vocabulary, get_vocabulary

from ..metrics.segmentation import ConfusionMatrix
from .data import SourcePairs
from .network import SegNet

__all__ = ["evaluate_segmenter"]


def _images_and_labels(dataset: Any, start: int, stop: int) -> tuple[torch.Tensor, np.ndarray]:
    items = [dataset[i] for i in range(start, stop)]
    try:
        images = torch.stack([torch.as_tensor(it["image"]).float() for it in items])
        labels = np.stack([np.asarray(it["label"]) for it in items])
    except (KeyError, TypeError, IndexError, RuntimeError, ValueError) as e:
        raise SisgenInputError(f"items {start}..{stop - 1} are not image/label pairs of one "
                               f"size ({e})") from None
    return images, labels


@torch.no_grad()
def _predict(model: SegNet | Segmenter, images: torch.Tensor) -> np.ndarray:
    if isinstance(model, Segmenter):
        uint8 = images.mul(255).round_().clamp_(0, 255).to(torch.uint8)
        return np.asarray(model.predict(uint8.permute(0, 2, 3, 1).numpy()))
    ids = np.asarray(model.class_ids, np.int64)
    return ids[model(images).argmax(1).numpy()]


def evaluate_segmenter(model: SegNet | Segmenter, data: Any, *, batch_size: int = 32,
                       size: tuple[int, int] | None = None,
                       vocabulary: Vocabulary | str | None = None,
                       threads: int | None = 1) -> dict[str, Any]:
    """Score ``model`` on every item of ``data``.

    Args:
        model: A :class:`SegNet` (its ``class_ids`` give each channel's class) or a
            :class:`sisgen.segmenter.Segmenter` (which predicts class ids itself).
        data: A map-style dataset of ``{"image": [3,H,W] in 0..1, "label": [H,W]}`` items
            (e.g. :class:`sisgen.integrations.LabeledDataset`) or a source with photos.
        batch_size: Images per forward pass.
        size: For a source: the ``(H, W)`` its pairs are resized to (``None``: native).
        vocabulary: The data's classes (names ``iou``; a :class:`Segmenter` is checked
            against it); default the data's ``vocabulary``.
        threads: ``torch.set_num_threads`` while scoring (restored afterwards; ``None``
            leaves the setting alone; see :func:`train_segmenter` for why 1).

    Returns:
        ``{"miou": %, "pixel_acc": %, "iou": {class name: %}, "images": n}``.

    Raises:
        SisgenInputError: Empty data, items that are not image/label pairs, or a
            :class:`Segmenter` of other classes than the data's.
    """
    if isinstance(data, Source):
        data = SourcePairs(data, size=size)
    if len(data) == 0:
        raise SisgenInputError("nothing to evaluate: the dataset is empty")
    vocab = get_vocabulary(vocabulary) if vocabulary is not None else getattr(
        data, "vocabulary", None)
    if isinstance(model, Segmenter) and vocab is not None:
        model.check_vocabulary(vocab, "the evaluation data")
    was_training = isinstance(model, torch.nn.Module) and model.training
    if isinstance(model, torch.nn.Module):
        model.eval()
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    matrix = ConfusionMatrix()
    try:
        for start in range(0, len(data), max(1, int(batch_size))):
            stop = min(len(data), start + max(1, int(batch_size)))
            images, labels = _images_and_labels(data, start, stop)
            matrix.update(_predict(model, images), labels)
    finally:
        torch.set_num_threads(old_threads)
        if was_training:
            model.train()

    def name(class_id: int) -> str:
        return vocab[class_id].name if vocab is not None and class_id in vocab else str(class_id)

    ious = matrix.class_iou()
    return {"miou": 100.0 * matrix.miou(), "pixel_acc": 100.0 * matrix.pixel_accuracy(),
            "iou": {name(k): 100.0 * v for k, v in sorted(ious.items())}, "images": len(data)}
