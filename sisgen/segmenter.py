"""A segmentation network as sisgen uses it: class ids, pixel losses, its metadata sidecar.

A :class:`Segmenter` wraps a TorchScript file (``torch.jit.load``) or an ONNX file
(onnxruntime), or any callable, mapping a float image batch ``[B,3,H,W]`` to logits
``[B,C,H,W]``; channel ``c`` is vocabulary class id ``c`` unless a ``class_map`` (or the
file's metadata) says otherwise. It predicts class ids (:meth:`Segmenter.predict`), returns
logits at the images' size (:meth:`Segmenter.logits`) and per-pixel cross-entropies of
label maps (:meth:`Segmenter.pixel_loss`). The quality filter (:mod:`sisgen.filtering`),
the curation tools (:mod:`sisgen.curation`) and the ``miou`` metric
(:mod:`sisgen.training.metrics`) all use it.

Segmenter metadata: a model file ``seg.onnx`` may come with a sidecar ``seg.onnx.json``
(written by sisgen's segmenter exporter)::

    {"format": "sisgen-segmenter", "version": 1, "vocabulary": <Vocabulary.to_dict()>,
     "class_ids": [class id of channel 0, 1, ...], "input_range": [0, 1],
     "mean": [r, g, b], "std": [r, g, b], "size": [H, W]}

It supplies the class map, input range, mean, std and input size (arguments given to
:class:`Segmenter` win) and the segmenter's vocabulary, which
:meth:`Segmenter.check_vocabulary` compares with the data's. Files without a sidecar are
opened by the command line and the ``miou`` metric with ImageNet statistics
(:func:`segmenter_inputs`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .errors import SisgenInputError
from .io import read_json
from .labelmap import IGNORE_ID
from .vocab import Vocabulary, get_vocabulary

#: The ``format`` of a segmenter's metadata sidecar.
SEGMENTER_FORMAT = "sisgen-segmenter"
#: ImageNet statistics: the input normalisation of a segmenter file when neither the
#: arguments nor its metadata sidecar give one (:func:`segmenter_inputs`).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


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


def segmenter_inputs(model: str | os.PathLike, mean: Sequence[float] | None = None,
                     std: Sequence[float] | None = None,
                     input_range: Sequence[float] | None = None
                     ) -> dict[str, tuple[float, ...] | None]:
    """``mean`` / ``std`` / ``input_range`` to open the segmenter file ``model`` with.

    Given values win; then, when the file has a metadata sidecar, ``None`` (the
    :class:`Segmenter` reads the sidecar, and its own defaults fill what the sidecar leaves
    out); else ImageNet statistics (:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`) in
    ``[0, 1]``.

    Returns:
        ``{"mean": ..., "std": ..., "input_range": ...}``, keyword arguments of
        :class:`Segmenter`.

    Raises:
        SisgenInputError: The sidecar is malformed (names the sidecar file).
    """
    path = Path(model)
    meta = segmenter_metadata(path) if path.is_file() else None
    out: dict[str, tuple[float, ...] | None] = {}
    for key, given, default in (("mean", mean, IMAGENET_MEAN), ("std", std, IMAGENET_STD),
                                ("input_range", input_range, (0.0, 1.0))):
        out[key] = tuple(given) if given is not None else (None if meta else default)
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

    @property
    def module(self) -> Any:
        """The torch module behind this segmenter (TorchScript or the callable given).

        ``None`` for an ONNX file.
        """
        return self._module

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
