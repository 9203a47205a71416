"""Segmentation agreement of generated images: mIoU and pixel accuracy.

The protocol of SPADE, OASIS and their successors: a segmenter trained on real photos
(DRN-D-105 for Cityscapes, UperNet101 for ADE20K, DeepLab-v2 for COCO-Stuff) segments
each generated image, and the prediction is scored against the label map the image was
generated from. Scores are dataset-level: one confusion matrix accumulated over all
images (``torch.bincount``), then

* IoU of class ``c`` = TP / (TP + FP + FN); mIoU = the mean over classes that occur in
  the ground truth or the prediction (classes absent from both are left out);
* pixel accuracy = correctly labeled pixels / labeled pixels.

Ground-truth pixels with the ignore id (255) are left out. A prediction of 255 (a
segmenter channel that maps to no class) counts as wrong.

Segmenters usually predict another id space than the label maps -- Cityscapes segmenters
predict the 19 trainIds while label maps hold labelIds. ``remap`` (a :mod:`sisgen.remap`
table such as ``"cityscapes->cityscapes_trainid"``) moves the ground truth into the
segmenter's space before scoring, which is how the official evaluations score.

The segmenter is a :class:`sisgen.segmenter.Segmenter` (TorchScript or ONNX file with
its input range, mean and std), the same one quality filtering uses. A file's input
normalisation comes from the options, else its metadata sidecar, else ImageNet statistics
in [0, 1] (:func:`sisgen.segmenter.segmenter_inputs`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from sisgen.errors import SisgenInputError
from sisgen.labelmap import IGNORE_ID
from sisgen.remap import Remap, get_remap
from sisgen.segmenter import Segmenter, segmenter_inputs
from sisgen.vocab import Vocabulary

from .base import EvalBatch, Metric, MetricOptions, register_metric

#: Ids are uint8 (0..254, 255 = ignore), so a 256×256 matrix holds every case.
NUM_IDS = 256


class ConfusionMatrix:
    """Accumulated ``[256, 256]`` counts: rows ground truth, columns prediction.

    Args:
        ignore_id: Ground-truth id left out of every score.
    """

    def __init__(self, ignore_id: int = IGNORE_ID):
        self.ignore_id = int(ignore_id)
        self.counts = torch.zeros(NUM_IDS, NUM_IDS, dtype=torch.int64)

    def update(self, prediction: np.ndarray | torch.Tensor, label: np.ndarray | torch.Tensor
               ) -> None:
        """Add a prediction and its ground truth (same shape, ids 0..255)."""
        pred = torch.as_tensor(np.asarray(prediction)).long().flatten()
        gt = torch.as_tensor(np.asarray(label)).long().flatten()
        if pred.shape != gt.shape:
            raise ValueError(f"prediction {tuple(np.shape(prediction))} and label "
                             f"{tuple(np.shape(label))} differ in shape")
        keep = gt != self.ignore_id
        pred = pred[keep].clamp(0, NUM_IDS - 1)
        gt = gt[keep].clamp(0, NUM_IDS - 1)
        self.counts += torch.bincount(gt * NUM_IDS + pred, minlength=NUM_IDS * NUM_IDS
                                      ).view(NUM_IDS, NUM_IDS)

    def class_iou(self, classes: Sequence[int] | None = None) -> dict[int, float]:
        """IoU per class id that occurs in the ground truth or the prediction.

        Args:
            classes: Restrict to these ids (default: every id but the ignore id).
        """
        c = self.counts.double()
        tp = c.diag()
        union = c.sum(0) + c.sum(1) - tp
        ids = range(NUM_IDS) if classes is None else classes
        return {int(k): float(tp[k] / union[k]) for k in ids
                if k != self.ignore_id and union[k] > 0}

    def miou(self, classes: Sequence[int] | None = None) -> float:
        """Mean IoU over :meth:`class_iou` (``nan`` when nothing was scored)."""
        ious = self.class_iou(classes)
        return float(np.mean(list(ious.values()))) if ious else float("nan")

    def pixel_accuracy(self) -> float:
        """Correct / labeled pixels (``nan`` when nothing was scored)."""
        total = int(self.counts.sum())
        return float(self.counts.diag().sum()) / total if total else float("nan")


def build_segmenter(options: MetricOptions) -> Segmenter | Callable[[np.ndarray], np.ndarray]:
    """The options' segmenter: a prebuilt one as is, or a file opened as a ``Segmenter``.

    A file's ``mean`` / ``std`` / ``input_range`` are the options' ``seg_*`` values where
    given, else its metadata sidecar's, else ImageNet statistics in [0, 1]
    (:func:`sisgen.segmenter.segmenter_inputs`, as ``sisgen eval`` does).

    Raises:
        SisgenInputError: No segmenter was given, or its file is missing or malformed.
    """
    seg = options.segmenter
    if seg is None:
        raise SisgenInputError("the miou metric needs a segmenter (a TorchScript or ONNX file: "
                         "--segmenter / segmenter=)")
    if isinstance(seg, (str, os.PathLike)):
        inputs = segmenter_inputs(seg, options.seg_mean, options.seg_std,
                                  options.seg_input_range)
        return Segmenter(seg, **inputs, device=options.device, batch_size=options.batch_size)
    return seg


@register_metric("miou")
class SegmentationMetric(Metric):
    """mIoU and pixel accuracy of a segmenter on the generated images (module docstring).

    Results: ``miou``, ``pixel_accuracy`` and ``class_iou`` (class name -> IoU).
    """

    def __init__(self, options: MetricOptions):
        self.segmenter = build_segmenter(options)
        self.remap: Remap | None = None if options.remap is None else get_remap(options.remap)
        self.matrix = ConfusionMatrix()
        self.vocabulary: Vocabulary | None = None if self.remap is None else self.remap.target
        self.images = 0

    def update(self, batch: EvalBatch) -> None:
        """Segment the batch's generated images and count against their label maps."""
        preds = np.asarray(self.segmenter(np.stack(batch.images)))
        for pred, lm in zip(preds, batch.labelmaps, strict=True):
            gt = lm.semantic if self.remap is None else self.remap.apply(lm.semantic)
            self.matrix.update(pred, gt)
        if self.vocabulary is None:
            self.vocabulary = batch.vocabulary
        self.images += len(batch.images)

    def _name(self, class_id: int) -> str:
        if self.vocabulary is not None and class_id in self.vocabulary:
            return self.vocabulary[class_id].name
        return str(class_id)

    def result(self) -> dict[str, Any]:
        """``{"miou", "pixel_accuracy", "class_iou", "miou_images"}``."""
        ious = self.matrix.class_iou()
        return {"miou": self.matrix.miou(), "pixel_accuracy": self.matrix.pixel_accuracy(),
                "class_iou": {self._name(k): round(v, 6) for k, v in ious.items()},
                "miou_images": self.images}
