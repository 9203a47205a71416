"""Quality filtering of generated images with a segmenter.

A :class:`Segmenter` wraps a TorchScript file (``torch.jit.load``) or an ONNX file
(onnxruntime) mapping a float image batch ``[B,3,H,W]`` to logits ``[B,C,H,W]``; channel
``c`` is vocabulary class id ``c`` unless a ``class_map`` (or the file's metadata) says
otherwise. A :class:`QualityFilter` segments each generated image and compares the
prediction with the label map it was generated from, in one of three modes:

* ``"drop"``: images whose mIoU falls below a threshold are dropped, labels untouched;
* ``"ignore_disagreement"``: also, the pixels where the segmenter disagrees are set to the
  ignore id (255) in the returned label map;
* ``"loss"`` (FreeMask, Yang et al. 2023): a pixel whose cross-entropy under the segmenter
  exceeds ``factor`` times its class's mean loss on *real* images (a
  :class:`~sisgen.curation.ReferenceStats`) is set to 255; ``max_ignored`` optionally drops
  an image when too large a share of its pixels is ignored.

Pipeline use, per engine batch::

    results = quality_filter.apply(images, labelmaps)   # list[FilterResult]
    for r in results:
        if r.keep:
            write(r.image, r.labelmap)     # r.labelmap has 255 where ignored
        record(r.to_dict())                # {"miou", "pixel_acc", "keep", "ignored_pixels",
                                           #  "ignored_fraction", "class_ignored"}

Segmenter metadata: a model file ``seg.onnx`` may come with a sidecar ``seg.onnx.json``
(written by sisgen's segmenter exporter)::

    {"format": "sisgen-segmenter", "version": 1, "vocabulary": <Vocabulary.to_dict()>,
     "class_ids": [class id of channel 0, 1, ...], "input_range": [0, 1],
     "mean": [r, g, b], "std": [r, g, b], "size": [H, W]}

It supplies the class map, input range, mean, std and input size (arguments given to
:class:`Segmenter` win) and the segmenter's vocabulary, which
:meth:`Segmenter.check_vocabulary` compares with the data's.
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
from .io import read_json
from .labelmap import IGNORE_ID, LabelMap
from .vocab import Vocabulary, get_vocabulary

MODES = ("drop", "ignore_disagreement", "loss")
#: Modes that write ignore pixels into the label maps.
IGNORING_MODES = ("ignore_disagreement", "loss")
#: The ``format`` of a segmenter's metadata sidecar.
SEGMENTER_FORMAT = "sisgen-segmenter"
#: FreeMask's loss factor: pixels above 1.25x their class's mean real loss are ignored.
DEFAULT_LOSS_FACTOR = 1.25


def class_map_from_train_ids(vocabulary: Vocabulary) -> dict[int, int]:
    """``{train id: class id}`` for a segmenter predicting the vocabulary's train ids."""
    lut = vocabulary.train_id_table()
    out: dict[int, int] = {}
    for class_id in vocabulary.ids:
        t = int(lut[class_id])
        if t != IGNORE_ID:
            out.setdefault(t, class_id)
    return out


def sidecar_path(model: str | os.PathLike) -> Path:
    """The metadata sidecar of a segmenter file: ``<model file>.json``."""
    return Path(f"{os.fspath(model)}.json")


def segmenter_metadata(model: str | os.PathLike) -> dict[str, Any] | None:
    """The checked metadata sidecar of a segmenter file, or ``None`` when it has none.

    Returns:
        ``{"vocabulary": Vocabulary, "class_ids": [...], "input_range": (lo, hi),
        "mean": (...), "std": (...), "size": (H, W) or None}`` (keys the file leaves out
        are absent, except the vocabulary and class ids, which are required).

    Raises:
        SisgenInputError: The sidecar is malformed (names the sidecar file).
    """
    path = sidecar_path(model)
    if not path.is_file():
        return None
    data = read_json(path)
    if not isinstance(data, Mapping) or data.get("format") != SEGMENTER_FORMAT:
        raise SisgenInputError(f"not a segmenter metadata file (format must be "
                               f"{SEGMENTER_FORMAT!r})", path)
    if data.get("version") != 1:
        raise SisgenInputError(f"unsupported segmenter metadata version {data.get('version')!r}"
                               " (this sisgen reads version 1)", path)
    if "vocabulary" not in data or "class_ids" not in data:
        raise SisgenInputError("segmenter metadata needs 'vocabulary' and 'class_ids'", path)
    vocab = Vocabulary.from_dict(data["vocabulary"], source=str(path))
    out: dict[str, Any] = {"vocabulary": vocab}
    try:
        out["class_ids"] = [int(c) for c in data["class_ids"]]
        for key, n in (("input_range", 2), ("mean", 3), ("std", 3), ("size", 2)):
            if data.get(key) is not None:
                value = tuple(float(v) for v in data[key])
                if len(value) != n:
                    raise ValueError(f"{key} needs {n} numbers, got {len(value)}")
                out[key] = tuple(int(v) for v in value) if key == "size" else value
    except (TypeError, ValueError) as e:
        raise SisgenInputError(f"bad segmenter metadata ({e})", path) from None
    unknown = [c for c in out["class_ids"] if c not in vocab and c != IGNORE_ID]
    if unknown:
        raise SisgenInputError(f"class_ids {unknown[:5]} are not in the metadata's vocabulary "
                               f"{vocab.name!r}", path)
    return out


class Segmenter:
    """A segmentation model used to check generated images and to measure their losses.

    Args:
        model: A ``.pt``/``.ts`` TorchScript file, an ``.onnx`` file, or a callable
            (e.g. an ``nn.Module``) taking a float tensor ``[B,3,H,W]`` and returning logits
            ``[B,C,h,w]`` (a dict's ``"out"`` or a tuple's first element also works). Logits
            of another size are resized (bilinear) to the image size. A file's metadata
            sidecar ``<file>.json`` (module docstring) is read when present and fills in
            every argument below that is left ``None``.
        mean: Per-channel mean subtracted after scaling to ``input_range`` (default 0).
        std: Per-channel std divided by after subtracting ``mean`` (default 1).
        input_range: ``(low, high)`` that uint8 0..255 is mapped to before normalising
            (``(0, 1)``, ``(0, 255)``, ``(-1, 1)``...; default ``(0, 1)``).
        class_map: Segmenter channel -> vocabulary class id (mapping or sequence indexed by
            channel); channels not mapped predict 255. Default: channel ``c`` is class ``c``.
        vocabulary: The vocabulary the class ids belong to (a name, file or
            :class:`Vocabulary`); default: the metadata's, else unknown (``None``).
        input_size: ``(H, W)`` the network runs at: images of another size are resized
            (bilinear, antialiased) to it and the logits resized back. Default: the
            metadata's ``size``, else the images' own size.
        device: Torch device for TorchScript/callable models.
        providers: onnxruntime providers for ONNX files.
        batch_size: Images per segmenter call.

    Attributes:
        vocabulary: The segmenter's vocabulary, or ``None`` when unknown.
        metadata: The checked sidecar (:func:`segmenter_metadata`) or ``None``.

    Raises:
        SisgenInputError: The model file is missing or cannot be loaded, or its sidecar is
            malformed.
    """

    def __init__(self, model: str | os.PathLike | Callable[[torch.Tensor], Any], *,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 input_range: tuple[float, float] | None = None,
                 class_map: Mapping[int, int] | Sequence[int] | None = None,
                 vocabulary: Vocabulary | str | os.PathLike | None = None,
                 input_size: tuple[int, int] | None = None,
                 device: str | torch.device = "cpu", providers: list[str] | None = None,
                 batch_size: int = 8):
        self.path: str | None = None
        self.metadata: dict[str, Any] | None = None
        if isinstance(model, (str, os.PathLike)):
            self.path = os.fspath(model)
            if not Path(model).is_file():
                raise SisgenInputError("no such segmenter file", model)
            self.metadata = segmenter_metadata(model)
        meta = self.metadata or {}
        self.device = torch.device(device)
        mean = meta.get("mean", (0.0, 0.0, 0.0)) if mean is None else mean
        std = meta.get("std", (1.0, 1.0, 1.0)) if std is None else std
        input_range = meta.get("input_range", (0.0, 1.0)) if input_range is None else input_range
        self.mean = np.asarray(mean, np.float32).reshape(1, 3, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, 3, 1, 1)
        if np.any(self.std == 0):
            raise ValueError("std must be nonzero")
        self.input_range = (float(input_range[0]), float(input_range[1]))
        self.class_map = meta.get("class_ids") if class_map is None else class_map
        self.vocabulary = (meta.get("vocabulary") if vocabulary is None
                           else get_vocabulary(vocabulary))
        size = meta.get("size") if input_size is None else input_size
        self.input_size = None if size is None else (int(size[0]), int(size[1]))
        self.batch_size = max(1, int(batch_size))
        self._session: Any = None
        self._module: Any = None
        if self.path is not None:
            self._open(Path(self.path), providers)
        elif callable(model):
            self._module = model
            if isinstance(model, torch.nn.Module):
                model.eval()
        else:
            raise TypeError(f"model must be a file path or a callable, got {type(model).__name__}")
        self._lut_cache: tuple[int, np.ndarray, np.ndarray] | None = None

    def _open(self, path: Path, providers: list[str] | None) -> None:
        if path.suffix.lower() == ".onnx":
            import onnxruntime as ort

            try:
                self._session = ort.InferenceSession(
                    str(path), providers=providers or ["CPUExecutionProvider"])
            except Exception as e:  # onnxruntime raises its own exception types
                raise SisgenInputError(f"cannot load ONNX segmenter ({e})", path) from e
            self._input = self._session.get_inputs()[0].name
            return
        try:
            self._module = torch.jit.load(str(path), map_location=self.device).eval()
        except Exception as e:  # torch raises RuntimeError/ValueError variants
            raise SisgenInputError(f"cannot load TorchScript segmenter ({e})", path) from e

    # ------------------------------------------------------------------ classes
    def _luts(self, channels: int) -> tuple[np.ndarray, np.ndarray]:
        """``(channel -> class id, class id -> first channel or -1)``, 256 class entries."""
        if self._lut_cache is not None and self._lut_cache[0] == channels:
            return self._lut_cache[1], self._lut_cache[2]
        lut = np.full(channels, IGNORE_ID, np.int64)
        if self.class_map is None:
            lut[:] = np.arange(channels)
        elif isinstance(self.class_map, Mapping):
            for c, class_id in self.class_map.items():
                if 0 <= int(c) < channels:
                    lut[int(c)] = int(class_id)
        else:
            ids = np.asarray(self.class_map, np.int64)
            if self.metadata is not None and len(ids) != channels:
                raise SisgenInputError(f"the segmenter returns {channels} channels but its "
                                       f"metadata lists {len(ids)} class ids",
                                       sidecar_path(self.path or ""))
            lut[:min(len(ids), channels)] = ids[:channels]
        inverse = np.full(256, -1, np.int64)
        for c in range(channels - 1, -1, -1):  # the first channel of a class wins
            if 0 <= lut[c] < IGNORE_ID:
                inverse[lut[c]] = c
        self._lut_cache = (channels, lut, inverse)
        return lut, inverse

    def check_vocabulary(self, vocabulary: Vocabulary, what: str = "the data") -> None:
        """Check that this segmenter's class ids mean the same classes as ``vocabulary``'s.

        With a known vocabulary (metadata or argument) its ids and names must equal the
        data's; without one, the class map's ids must at least exist in ``vocabulary``.

        Args:
            vocabulary: The data's vocabulary.
            what: Names the data in the error (``"the toycity source"``...).

        Raises:
            SisgenInputError: The classes differ; names the model file.
        """
        where = self.path or repr(self)
        if self.vocabulary is not None:
            mine, theirs = self.vocabulary, vocabulary
            if mine.ids != theirs.ids or mine.names != theirs.names:
                diff = [f"{i}: {mine[i].name if i in mine else '-'} vs "
                        f"{theirs[i].name if i in theirs else '-'}"
                        for i in sorted(set(mine.ids) | set(theirs.ids))
                        if (i in mine) != (i in theirs) or mine[i].name != theirs[i].name]
                raise SisgenInputError(
                    f"the segmenter's classes (vocabulary {mine.name!r}, {len(mine)} classes) "
                    f"do not match {what} (vocabulary {theirs.name!r}, {len(theirs)} classes; "
                    f"differing ids {', '.join(diff[:5])}{' ...' if len(diff) > 5 else ''})",
                    where)
            return
        if self.class_map is None:
            return
        ids = (self.class_map.values() if isinstance(self.class_map, Mapping)
               else self.class_map)
        unknown = sorted({int(c) for c in ids} - {*vocabulary.ids, IGNORE_ID})
        if unknown:
            raise SisgenInputError(f"the segmenter's class map names ids {unknown[:5]} that "
                                   f"{what} (vocabulary {vocabulary.name!r}) does not have",
                                   where)

    # ------------------------------------------------------------------ running
    def preprocess(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """``[B,H,W,3]`` uint8 -> normalised float32 ``[B,3,H,W]``."""
        x = np.stack([np.asarray(im) for im in images]) if not isinstance(images, np.ndarray) \
            else images
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"images must be B×H×W×3, got {x.shape}")
        lo, hi = self.input_range
        x = x.transpose(0, 3, 1, 2).astype(np.float32) * ((hi - lo) / 255.0) + lo
        return np.ascontiguousarray((x - self.mean) / self.std, dtype=np.float32)

    def _run(self, chunk: np.ndarray) -> torch.Tensor:
        """Logits of one preprocessed chunk at the network's size."""
        if self._session is not None:
            return torch.from_numpy(np.asarray(
                self._session.run(None, {self._input: chunk})[0], np.float32))
        with torch.inference_mode():
            y = self._module(torch.from_numpy(chunk).to(self.device))
        if isinstance(y, Mapping):
            y = y["out"]
        elif isinstance(y, (tuple, list)):
            y = y[0]
        return y.float().cpu()

    def _chunks(self, images: Sequence[np.ndarray] | np.ndarray):
        """``(start, logits [b,C,H,W] float32 tensor at the images' size)`` per chunk."""
        x = self.preprocess(images)
        size = tuple(x.shape[-2:])
        for s in range(0, len(x), self.batch_size):
            chunk = x[s:s + self.batch_size]
            if self.input_size is not None and self.input_size != size:
                chunk = F.interpolate(torch.from_numpy(chunk), size=self.input_size,
                                      mode="bilinear", align_corners=False,
                                      antialias=True).numpy()
            y = self._run(np.ascontiguousarray(chunk))
            if y.ndim != 4 or y.shape[0] != len(chunk):
                raise ValueError(f"segmenter must return B×C×H×W logits, got {tuple(y.shape)}")
            if tuple(y.shape[-2:]) != size:
                y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
            yield s, y

    def logits(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Float32 logits ``[B,C,H,W]`` at the images' size."""
        return np.concatenate([y.numpy() for _, y in self._chunks(images)])

    def predict(self, images: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Predicted vocabulary class ids ``[B,H,W]`` (int64; 255 for unmapped channels)."""
        out = []
        for _, y in self._chunks(images):
            out.append(self._luts(y.shape[1])[0][y.argmax(dim=1).numpy()])
        return np.concatenate(out)

    def loss_and_prediction(self, images: Sequence[np.ndarray] | np.ndarray,
                            labels: Sequence[np.ndarray] | np.ndarray
                            ) -> tuple[np.ndarray, np.ndarray]:
        """Per-pixel cross-entropy of the labels and the predicted class ids, in one pass.

        The loss of a pixel labelled class ``c`` is ``-log p(c)``, ``p`` the softmax over
        the channels; when several channels map to ``c`` their probabilities add up.

        Args:
            images: ``H×W×3`` uint8 images (one size).
            labels: Their ``H×W`` class-id maps, same size.

        Returns:
            ``(loss, prediction)``: float32 ``[B,H,W]`` with ``nan`` at pixels labelled
            255 or with a class no channel predicts, and int64 ``[B,H,W]`` class ids.
        """
        lab = np.stack([np.asarray(lb) for lb in labels]).astype(np.int64)
        losses, preds = [], []
        for s, y in self._chunks(images):
            lut, inverse = self._luts(y.shape[1])
            part = lab[s:s + len(y)]
            if part.shape != (len(y), *y.shape[-2:]):
                raise ValueError(f"labels {part.shape[1:]} and images {tuple(y.shape[-2:])} "
                                 "differ in size")
            preds.append(lut[y.argmax(dim=1).numpy()])
            losses.append(self._class_loss(y, part, lut, inverse))
        return np.concatenate(losses), np.concatenate(preds)

    def pixel_loss(self, images: Sequence[np.ndarray] | np.ndarray,
                   labels: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Float32 ``[B,H,W]`` cross-entropy of each pixel's label (``nan``: not scored).

        See :meth:`loss_and_prediction`.
        """
        return self.loss_and_prediction(images, labels)[0]

    @staticmethod
    def _class_loss(logits: torch.Tensor, labels: np.ndarray, lut: np.ndarray,
                    inverse: np.ndarray) -> np.ndarray:
        logp = torch.log_softmax(logits, dim=1)
        channel = np.where((labels >= 0) & (labels < IGNORE_ID),
                           inverse[np.clip(labels, 0, 255)], -1)
        ch = torch.from_numpy(np.maximum(channel, 0))
        loss = -logp.gather(1, ch[:, None]).squeeze(1)
        mapped = lut[(lut >= 0) & (lut < IGNORE_ID)]
        shared = np.unique(mapped)[np.bincount(mapped, minlength=256)[np.unique(mapped)] > 1]
        for class_id in shared:  # several channels predict this class: add their probabilities
            at = torch.from_numpy(labels == class_id)
            if at.any():
                group = torch.from_numpy(np.flatnonzero(lut == class_id))
                loss = torch.where(at, -torch.logsumexp(logp[:, group], dim=1), loss)
        out = loss.numpy().astype(np.float32)
        out[channel < 0] = np.nan
        return out

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


def _num(x: float) -> float | None:
    return None if math.isnan(x) else round(x, 5)


@dataclass
class FilterResult:
    """The verdict on one generated image.

    Attributes:
        keep: Whether to keep the sample.
        miou: mIoU over the classes present in the label (``nan``: nothing to score).
        pixel_acc: Pixel accuracy over non-ignored pixels.
        labelmap: The label map to write: the input one, or in an ignoring mode a copy with
            the rejected pixels set to 255 (instance ids untouched).
        image: The generated image (passed through).
        ignored_pixels: Pixels newly set to 255.
        class_iou: IoU per class present in the label.
        ignored_fraction: In an ignoring mode, ``ignored_pixels`` over the labelled pixels
            (``nan`` when none is labelled); ``None`` in ``drop`` mode.
        class_ignored: In an ignoring mode, per class present (by name): the fraction of
            its pixels set to 255.
        reason: Why a dropped sample was dropped (``"miou"``, ``"pixel_acc"`` or
            ``"max_ignored"``); ``None`` when kept.
    """

    keep: bool
    miou: float
    pixel_acc: float
    labelmap: LabelMap
    image: np.ndarray | None = None
    ignored_pixels: int = 0
    class_iou: dict[int, float] = field(default_factory=dict)
    ignored_fraction: float | None = None
    class_ignored: dict[str, float] = field(default_factory=dict)
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready scores for a manifest (``nan`` becomes ``None``)."""
        out: dict[str, Any] = {"keep": self.keep, "miou": _num(self.miou),
                               "pixel_acc": _num(self.pixel_acc),
                               "ignored_pixels": self.ignored_pixels}
        if self.ignored_fraction is not None:
            out["ignored_fraction"] = _num(self.ignored_fraction)
            out["class_ignored"] = {k: round(v, 5) for k, v in self.class_ignored.items()}
        if self.reason is not None:
            out["reason"] = self.reason
        return out


class QualityFilter:
    """Keep, drop or partly ignore generated images by what a segmenter sees in them.

    Args:
        segmenter: A :class:`Segmenter` (or, in the ``drop`` and ``ignore_disagreement``
            modes, any callable ``images -> [B,H,W] class ids``).
        min_miou: Samples with mIoU below this are dropped (in every mode; use 0 to keep
            everything). Samples with nothing to score (all ignored) are kept.
        min_pixel_acc: Optional pixel-accuracy threshold, also required to keep.
        mode: ``"drop"`` (labels untouched), ``"ignore_disagreement"`` (labels of kept
            samples get 255 where the prediction differs) or ``"loss"`` (255 where the
            pixel's cross-entropy exceeds ``factor`` x its class's mean real loss).
        ignore_id: The ignore id.
        reference: ``"loss"`` mode: the per-class mean losses on real images, a
            :class:`~sisgen.curation.ReferenceStats` or a mapping ``{class id: mean loss}``.
            Pixels of a class without a reference value are never ignored.
        factor: ``"loss"`` mode: the threshold factor (FreeMask: 1.25).
        max_ignored: In an ignoring mode, drop a sample when more than this fraction of
            its labelled pixels is ignored (``None``: never).
        vocabulary: Names classes in :attr:`FilterResult.class_ignored`; default the
            segmenter's, or the data's once :meth:`check_vocabulary` has seen it.
    """

    def __init__(self, segmenter: Segmenter | Callable[[np.ndarray], np.ndarray], *,
                 min_miou: float = 0.5, min_pixel_acc: float | None = None,
                 mode: str = "drop", ignore_id: int = IGNORE_ID, reference: Any = None,
                 factor: float = DEFAULT_LOSS_FACTOR, max_ignored: float | None = None,
                 vocabulary: Vocabulary | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if mode == "loss":
            if reference is None:
                raise ValueError("mode 'loss' needs reference= (per-class real losses)")
            if not hasattr(segmenter, "loss_and_prediction"):
                raise TypeError("mode 'loss' needs a Segmenter (it computes pixel losses)")
            if not factor > 0:
                raise ValueError(f"factor must be > 0, got {factor}")
        if max_ignored is not None and mode not in IGNORING_MODES:
            raise ValueError(f"max_ignored needs an ignoring mode ({', '.join(IGNORING_MODES)})")
        self.segmenter = segmenter
        self.min_miou = float(min_miou)
        self.min_pixel_acc = None if min_pixel_acc is None else float(min_pixel_acc)
        self.mode = mode
        self.ignore_id = int(ignore_id)
        self.reference = reference
        self.factor = float(factor)
        self.max_ignored = None if max_ignored is None else float(max_ignored)
        self.vocabulary = vocabulary or getattr(segmenter, "vocabulary", None)
        self.thresholds = self._thresholds() if mode == "loss" else None

    def _thresholds(self) -> np.ndarray:
        """Per class id (256 entries): the loss above which a pixel is ignored."""
        table = np.full(256, np.inf)
        losses = getattr(self.reference, "class_loss", self.reference)
        for class_id, mean in dict(losses).items():
            if mean is not None and math.isfinite(float(mean)) and 0 <= int(class_id) < 256:
                table[int(class_id)] = self.factor * float(mean)
        return table

    def check_vocabulary(self, vocabulary: Vocabulary, what: str = "the data") -> None:
        """Check the segmenter (and the loss reference) against the data's vocabulary.

        Also names classes by ``vocabulary`` from now on, unless a vocabulary was given.

        Raises:
            SisgenInputError: Another vocabulary; names the segmenter or statistics file.
        """
        for part in (self.segmenter, self.reference):
            check = getattr(part, "check_vocabulary", None)
            if check is not None:
                check(vocabulary, what)
        if self.vocabulary is None:
            self.vocabulary = vocabulary

    def score(self, images: Sequence[np.ndarray], labels: Sequence[np.ndarray | LabelMap]
              ) -> list[tuple[float, float]]:
        """``(miou, pixel_acc)`` per image."""
        return [(r.miou, r.pixel_acc) for r in self.apply(images, labels)]

    def _name(self, class_id: int) -> str:
        voc = self.vocabulary
        return voc[class_id].name if voc is not None and class_id in voc else str(class_id)

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
        batch = np.stack([np.asarray(im) for im in images])
        losses: Any = [None] * len(maps)
        if self.mode == "loss":
            losses, preds = self.segmenter.loss_and_prediction(  # type: ignore[union-attr]
                batch, [lm.semantic for lm in maps])
        else:
            preds = np.asarray(self.segmenter(batch))
        return [self._judge(im, lm, pred, loss)
                for im, lm, pred, loss in zip(images, maps, preds, losses, strict=True)]

    __call__ = apply

    def _judge(self, image: np.ndarray, lm: LabelMap, pred: np.ndarray,
               loss: np.ndarray | None) -> FilterResult:
        miou, acc, ious = score_prediction(pred, lm.semantic, self.ignore_id)
        reason = None
        if not math.isnan(miou):
            if miou < self.min_miou:
                reason = "miou"
            elif self.min_pixel_acc is not None and acc < self.min_pixel_acc:
                reason = "pixel_acc"
        result = FilterResult(reason is None, miou, acc, lm, image, 0, ious, reason=reason)
        if self.mode not in IGNORING_MODES:
            return result
        labelled = lm.semantic != self.ignore_id
        if self.mode == "loss":
            assert loss is not None and self.thresholds is not None
            table_ids = np.clip(lm.semantic, 0, 255)
            bad = labelled & (loss > self.thresholds[table_ids])  # nan compares False
        else:
            bad = (pred != lm.semantic) & labelled
        ignored = int(bad.sum())
        n_labelled = int(labelled.sum())
        result.ignored_pixels = ignored
        result.ignored_fraction = ignored / n_labelled if n_labelled else math.nan
        ids, totals = np.unique(lm.semantic[labelled], return_counts=True)
        dropped = np.bincount(lm.semantic[bad].astype(np.int64), minlength=256)
        result.class_ignored = {self._name(int(c)): float(dropped[c] / t)
                                for c, t in zip(ids, totals, strict=True)}
        if ignored:
            out = lm.copy()
            out.semantic[bad] = self.ignore_id
            out.meta["quality_ignored_pixels"] = ignored
            result.labelmap = out
        if (result.keep and self.max_ignored is not None and n_labelled
                and result.ignored_fraction > self.max_ignored):
            result.keep, result.reason = False, "max_ignored"
        return result

    def __repr__(self) -> str:
        extra = f", factor={self.factor}" if self.mode == "loss" else ""
        return f"QualityFilter(min_miou={self.min_miou}, mode={self.mode!r}{extra})"
