"""Quality filtering of generated images with a user-supplied segmenter.

A :class:`Segmenter` wraps a TorchScript file (``torch.jit.load``) or an ONNX file
(onnxruntime) mapping a float image batch ``[B,3,H,W]`` to logits ``[B,C,H,W]``; channel
``c`` is vocabulary class id ``c`` unless a ``class_map`` says otherwise. A
:class:`QualityFilter` segments each generated image and compares the prediction with the
label map it was generated from: images whose mIoU falls below a threshold are dropped, and
in ``"ignore_disagreement"`` mode the pixels where the segmenter disagrees are set to the
ignore id (255) in the returned label map.

Pipeline use, per engine batch::

    results = quality_filter.apply(images, labelmaps)   # list[FilterResult]
    for r in results:
        if r.keep:
            write(r.image, r.labelmap)     # r.labelmap has 255 where ignored (ignore mode)
        record(r.to_dict())                # {"miou", "pixel_acc", "keep", "ignored_pixels"}
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import SisgenInputError
from .labelmap import IGNORE_ID, LabelMap
from .vocab import Vocabulary

MODES = ("drop", "ignore_disagreement")


def class_map_from_train_ids(vocabulary: Vocabulary) -> dict[int, int]:
    """``{train id: class id}`` for a segmenter predicting the vocabulary's train ids."""
    lut = vocabulary.train_id_table()
    out: dict[int, int] = {}
    for class_id in vocabulary.ids:
        t = int(lut[class_id])
        if t != IGNORE_ID:
            out.setdefault(t, class_id)
    return out


class Segmenter:
    """A segmentation model used to check generated images.

    Args:
        model: A ``.pt``/``.ts`` TorchScript file, an ``.onnx`` file, or a callable
            (e.g. an ``nn.Module``) taking a float tensor ``[B,3,H,W]`` and returning logits
            ``[B,C,h,w]`` (a dict's ``"out"`` or a tuple's first element also works). Logits
            of another size are resized (bilinear) to the image size.
        mean: Per-channel mean subtracted after scaling to ``input_range``.
        std: Per-channel std divided by after subtracting ``mean``.
        input_range: ``(low, high)`` that uint8 0..255 is mapped to before normalising
            (``(0, 1)``, ``(0, 255)``, ``(-1, 1)``...).
        class_map: Segmenter channel -> vocabulary class id (mapping or sequence indexed by
            channel); channels not mapped predict 255. Default: channel ``c`` is class ``c``.
        device: Torch device for TorchScript/callable models.
        providers: onnxruntime providers for ONNX files.
        batch_size: Images per segmenter call.

    Raises:
        SisgenInputError: The model file is missing or cannot be loaded.
    """

    def __init__(self, model: str | os.PathLike | Callable[[torch.Tensor], Any], *,
                 mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0),
                 input_range: tuple[float, float] = (0.0, 1.0),
                 class_map: Mapping[int, int] | Sequence[int] | None = None,
                 device: str | torch.device = "cpu", providers: list[str] | None = None,
                 batch_size: int = 8):
        self.device = torch.device(device)
        self.mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        if np.any(self.std == 0):
            raise ValueError("std must be nonzero")
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self.batch_size = max(1, int(batch_size))
        self.class_map = class_map
        self._session: Any = None
        self._module: Any = None
        self.path: str | None = None
        if isinstance(model, (str, os.PathLike)):
            path = Path(model)
            self.path = str(path)
            if not path.is_file():
                raise SisgenInputError("no such segmenter file", path)
            if path.suffix.lower() == ".onnx":
                import onnxruntime as ort

                try:
                    self._session = ort.InferenceSession(
                        str(path), providers=providers or ["CPUExecutionProvider"])
                except Exception as e:  # onnxruntime raises its own exception types
                    raise SisgenInputError(f"cannot load ONNX segmenter ({e})", path) from e
                self._input = self._session.get_inputs()[0].name
            else:
                try:
                    self._module = torch.jit.load(str(path), map_location=self.device).eval()
                except Exception as e:  # torch raises RuntimeError/ValueError variants
                    raise SisgenInputError(f"cannot load TorchScript segmenter ({e})",
                                           path) from e
        elif callable(model):
            self._module = model
            if isinstance(model, torch.nn.Module):
                model.eval()
        else:
            raise TypeError(f"model must be a file path or a callable, got {type(model).__name__}")
        self._lut_cache: tuple[int, np.ndarray] | None = None

    def _lut(self, channels: int) -> np.ndarray:
        if self._lut_cache is not None and self._lut_cache[0] == channels:
            return self._lut_cache[1]
        lut = np.full(channels, IGNORE_ID, np.int64)
        if self.class_map is None:
            lut[:] = np.arange(channels)
        elif isinstance(self.class_map, Mapping):
            for c, class_id in self.class_map.items():
                if 0 <= int(c) < channels:
                    lut[int(c)] = int(class_id)
        else:
            ids = np.asarray(self.class_map, np.int64)[:channels]
            lut[:len(ids)] = ids
        self._lut_cache = (channels, lut)
        return lut

    def preprocess(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """``[B,H,W,3]`` uint8 -> normalised float32 ``[B,3,H,W]``."""
        x = np.stack([np.asarray(im) for im in images]) if not isinstance(images, np.ndarray) \
            else images
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"images must be B×H×W×3, got {x.shape}")
        lo, hi = self.input_range
        x = x.transpose(0, 3, 1, 2).astype(np.float32) * ((hi - lo) / 255.0) + lo
        return np.ascontiguousarray((x - self.mean) / self.std, dtype=np.float32)

    def logits(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Float32 logits ``[B,C,H,W]`` at the images' size."""
        x = self.preprocess(images)
        out = []
        for s in range(0, len(x), self.batch_size):
            chunk = x[s:s + self.batch_size]
            if self._session is not None:
                y = torch.from_numpy(np.asarray(
                    self._session.run(None, {self._input: chunk})[0], np.float32))
            else:
                with torch.inference_mode():
                    y = self._module(torch.from_numpy(chunk).to(self.device))
                if isinstance(y, Mapping):
                    y = y["out"]
                elif isinstance(y, (tuple, list)):
                    y = y[0]
                y = y.float()
            if y.ndim != 4 or y.shape[0] != len(chunk):
                raise ValueError(f"segmenter must return B×C×H×W logits, got {tuple(y.shape)}")
            if tuple(y.shape[-2:]) != chunk.shape[-2:]:
                y = F.interpolate(y, size=chunk.shape[-2:], mode="bilinear", align_corners=False)
            out.append(y.cpu().numpy())
        return np.concatenate(out)

    def predict(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Predicted vocabulary class ids ``[B,H,W]`` (int64; 255 for unmapped channels)."""
        logits = self.logits(images)
        return self._lut(logits.shape[1])[logits.argmax(axis=1)]

    def __call__(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Same as :meth:`predict`."""
        return self.predict(images)

    def __repr__(self) -> str:
        kind = "onnx" if self._session is not None else "torch"
        return f"<Segmenter {kind} {self.path or type(self._module).__name__}>"


def score_prediction(prediction: np.ndarray, label: np.ndarray, ignore_id: int = IGNORE_ID
                     ) -> tuple[float, float, dict[int, float]]:
    """Per-image agreement of a prediction with a label map.

    IoU is computed for each class present in ``label`` (ignored pixels excluded from both
    sides); mIoU is their mean. Pixel accuracy is the fraction of non-ignored pixels where
    the prediction equals the label.

    Returns:
        ``(miou, pixel_acc, {class id: iou})``; ``nan`` scores when every pixel is ignored.
    """
    valid = label != ignore_id
    if not valid.any():
        return math.nan, math.nan, {}
    gt = label[valid]
    pr = prediction[valid]
    ious: dict[int, float] = {}
    for c in np.unique(gt):
        g = gt == c
        p = pr == c
        ious[int(c)] = float((g & p).sum() / (g | p).sum())
    return float(np.mean(list(ious.values()))), float((gt == pr).mean()), ious


@dataclass
class FilterResult:
    """The verdict on one generated image.

    Attributes:
        keep: Whether to keep the sample.
        miou: mIoU over the classes present in the label (``nan``: nothing to score).
        pixel_acc: Pixel accuracy over non-ignored pixels.
        labelmap: The label map to write: the input one, or in ignore mode a copy with
            disagreeing pixels set to 255 (instance ids untouched).
        image: The generated image (passed through).
        ignored_pixels: Pixels newly set to 255.
        class_iou: IoU per class present in the label.
    """

    keep: bool
    miou: float
    pixel_acc: float
    labelmap: LabelMap
    image: np.ndarray | None = None
    ignored_pixels: int = 0
    class_iou: dict[int, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready scores for a manifest (``nan`` becomes ``None``)."""

        def num(x: float) -> float | None:
            return None if math.isnan(x) else round(x, 5)

        return {"keep": self.keep, "miou": num(self.miou), "pixel_acc": num(self.pixel_acc),
                "ignored_pixels": self.ignored_pixels}


class QualityFilter:
    """Keep or drop generated images by how well a segmenter recovers their label maps.

    Args:
        segmenter: A :class:`Segmenter` (or any callable ``images -> [B,H,W] class ids``).
        min_miou: Samples with mIoU below this are dropped (in both modes; use 0 in ignore
            mode to keep everything). Samples with nothing to score (all ignored) are kept.
        min_pixel_acc: Optional pixel-accuracy threshold, also required to keep.
        mode: ``"drop"`` (labels untouched) or ``"ignore_disagreement"`` (labels of kept
            samples get 255 where the prediction differs).
        ignore_id: The ignore id.
    """

    def __init__(self, segmenter: Segmenter | Callable[[np.ndarray], np.ndarray], *,
                 min_miou: float = 0.5, min_pixel_acc: float | None = None,
                 mode: str = "drop", ignore_id: int = IGNORE_ID):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.segmenter = segmenter
        self.min_miou = float(min_miou)
        self.min_pixel_acc = None if min_pixel_acc is None else float(min_pixel_acc)
        self.mode = mode
        self.ignore_id = int(ignore_id)

    def score(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray | LabelMap]
              ) -> list[tuple[float, float]]:
        """``(miou, pixel_acc)`` per image."""
        return [(r.miou, r.pixel_acc) for r in self.apply(images, labels)]

    def apply(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray | LabelMap]
              ) -> list[FilterResult]:
        """Judge one batch of generated images against the maps they were generated from.

        Args:
            images: ``H×W×3`` uint8 images (all one size).
            labels: Their label maps (:class:`LabelMap` or ``H×W`` arrays), same size.

        Returns:
            One :class:`FilterResult` per image, in order.
        """
        if len(images) != len(labels):
            raise ValueError("one label map per image")
        if not len(images):
            return []
        maps = [lm if isinstance(lm, LabelMap) else LabelMap(np.asarray(lm)) for lm in labels]
        for im, lm in zip(images, maps, strict=True):
            if np.asarray(im).shape[:2] != lm.shape:
                raise ValueError(f"image {np.asarray(im).shape[:2]} and label {lm.shape} "
                                 "differ in size")
        preds = np.asarray(self.segmenter(np.stack([np.asarray(im) for im in images])))
        results = []
        for im, lm, pred in zip(images, maps, preds, strict=True):
            miou, acc, ious = score_prediction(pred, lm.semantic, self.ignore_id)
            keep = math.isnan(miou) or (
                miou >= self.min_miou
                and (self.min_pixel_acc is None or acc >= self.min_pixel_acc))
            out, ignored = lm, 0
            if self.mode == "ignore_disagreement":
                bad = (pred != lm.semantic) & (lm.semantic != self.ignore_id)
                ignored = int(bad.sum())
                if ignored:
                    out = lm.copy()
                    out.semantic[bad] = self.ignore_id
                    out.meta["quality_ignored_pixels"] = ignored
            results.append(FilterResult(keep, miou, acc, out, im, ignored, ious))
        return results

    __call__ = apply

    def __repr__(self) -> str:
        return f"QualityFilter(min_miou={self.min_miou}, mode={self.mode!r})"
