"""A compact segmentation network that sisgen trains itself (``sisgen.training.segmenter``).

The curation loop (per-class loss statistics, the loss-based pixel filter, hardness plans)
and ``benchmarks/downstream.py`` need a segmenter; users may bring their own (TorchScript
or ONNX), and this package makes the loop run with none:

* :class:`SegNet` -- a small U-Net (conv-BN-ReLU, strided downsampling, bilinear
  upsampling with skips) mapping images in ``[0, 1]`` to logits;
* :func:`train_segmenter` -- trains one on streams of labeled items (real, synthetic,
  curated with ignore pixels) mixed per batch in fixed proportions;
* :func:`evaluate_segmenter` -- dataset-level mIoU / pixel accuracy / per-class IoU;
* :func:`recalibrate_norm` -- batch-norm statistics measured anew on unlabeled real
  photos (AdaBN), for a segmenter trained on synthetic images alone; with
  ``train_segmenter(..., separate_norm=True)``, see :mod:`.norm`;
* :func:`class_transfer` -- per class, how well a segmenter trained on synthetic images
  does on held-out real photos, against one trained on real photos (which classes a
  generator renders too poorly to learn from);
* :func:`export_segmenter` -- ONNX or TorchScript plus a JSON sidecar that
  :class:`sisgen.segmenter.Segmenter` reads;
* :mod:`.cli` -- ``sisgen segmenter train``.
"""

from __future__ import annotations

from .data import SourcePairs
from .evaluate import evaluate_segmenter
from .network import SegNet
from .norm import recalibrate_norm
from .trainer import SegmenterLog, StreamSampler, pixel_loss, train_segmenter
from .transfer import ClassTransfer, class_transfer

__all__ = ["ClassTransfer", "SegNet", "SegmenterLog", "SourcePairs", "StreamSampler",
           "class_transfer", "evaluate_segmenter", "pixel_loss", "recalibrate_norm",
           "train_segmenter"]
