"""Parity of an exported model with torch: the check behind ``sisgen export ... --check``.

The exported engine and the torch model (its export form, fp32, CPU) run on the same random
inputs: label maps made of random class *blobs* (Voronoi cells with random classes and a
patch of ignore pixels -- shaped like real label maps, unlike i.i.d. noise, so upsampled
conditioning, edges and per-class statistics are exercised), their instance edges (one
instance per blob, so neighbouring blobs of one class still get an edge) and noise from
seeds. The result reports the max and mean absolute difference of the images in [-1, 1].

Tolerances (``tol=None``): fp32 ``1e-4``; fp16 ``2e-2``; uint8 output adds one level
(``1 / 127.5``) for the rounding of the bytes. int8 exports (:mod:`sisgen.export.quantize`)
are approximations by design: a few pixels can move by tens of levels, so their check bounds
the *mean* absolute difference, ``5e-2`` (about 6 levels of 255).

Formats: ``onnx`` (onnxruntime, CPU provider), ``torch`` (a saved model folder) and any
file ``sisgen.load`` opens (TensorRT engines, AOTInductor packages); a runtime that is not
installed raises :class:`ParityUnavailableError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sisgen.models.base import SISGenerator

#: Tolerance by precision, for images in [-1, 1]: of the max abs difference, or of the mean
#: for the precisions in :data:`MEAN_CHECKED`.
TOLERANCE = {"fp32": 1e-4, "fp16": 2e-2, "int8": 5e-2}
#: Precisions whose parity bounds the mean absolute difference.
MEAN_CHECKED = frozenset({"int8"})
#: One uint8 level in [-1, 1] units (added for byte outputs).
UINT8_LEVEL = 1.0 / 127.5


class ParityUnavailableError(RuntimeError):
    """The runtime a format needs for its parity check is not installed here."""


@dataclass
class ParityResult:
    """Difference between an exported engine and torch on the same inputs.

    Attributes:
        max_abs: Largest absolute difference (images in [-1, 1]).
        mean_abs: Mean absolute difference.
        tol: The tolerance the check used (of ``max_abs``, or of ``mean_abs`` for int8).
        passed: ``max_abs <= tol`` (``mean_abs <= tol`` for int8).
        batch: Batch size of each run.
        runs: Number of seeds (batches) compared.
        format: The exported format.
        precision: ``fp32``, ``fp16`` or ``int8``.
    """

    max_abs: float
    mean_abs: float
    tol: float
    passed: bool
    batch: int = 2
    runs: int = 1
    format: str = "onnx"
    precision: str = "fp32"

    @property
    def bound(self) -> str:
        """What :attr:`tol` bounds: ``mean`` (int8) or ``max`` abs difference."""
        return "mean" if self.precision in MEAN_CHECKED else "max"

    def __str__(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (f"parity vs torch ({self.format} {self.precision}, {self.runs} x batch "
                f"{self.batch}): max abs diff {self.max_abs:.3e}, mean abs diff "
                f"{self.mean_abs:.3e}, {self.bound} abs tolerance {self.tol:.1e}: {verdict}")


def tolerance(precision: str = "fp32", uint8: bool = False) -> float:
    """The default tolerance for ``precision`` (``fp32``/``fp16``/``int8``) and output kind."""
    if precision not in TOLERANCE:
        raise ValueError(f"unknown precision {precision!r} (fp32, fp16, int8)")
    return TOLERANCE[precision] + (UINT8_LEVEL + 1e-6 if uint8 else 0.0)


def random_label_maps(num_classes: int, batch: int, height: int, width: int, seed: int = 0,
                      blobs: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Random blob label maps: Voronoi cells with random classes and an ignore patch.

    Returns:
        ``labels`` int64 ``[B,H,W]`` (255 = ignore) and ``instances`` int32 ``[B,H,W]``
        (one id per cell, 0 under the ignore patch).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    labels = np.empty((batch, height, width), np.int64)
    instances = np.empty((batch, height, width), np.int32)
    for b in range(batch):
        centers = rng.uniform(size=(blobs, 2)).astype(np.float32) * [height, width]
        dist = (yy[..., None] - centers[:, 0]) ** 2 + (xx[..., None] - centers[:, 1]) ** 2
        cell = dist.argmin(-1)
        labels[b] = rng.integers(0, num_classes, blobs)[cell]
        instances[b] = cell + 1
        ph, pw = max(1, height // 8), max(1, width // 8)
        y0, x0 = rng.integers(0, height - ph + 1), rng.integers(0, width - pw + 1)
        labels[b, y0:y0 + ph, x0:x0 + pw] = 255
        instances[b, y0:y0 + ph, x0:x0 + pw] = 0
    return labels, instances


def parity_inputs(model: SISGenerator, batch: int = 2, seed: int = 0,
                  size: tuple[int, int] | None = None) -> dict[str, torch.Tensor]:
    """Random inputs of ``model`` by name (only those it uses), at ``size`` or its own.

    ``instances`` (models with an intra-class position map) are the blobs' ids; other
    inputs beyond the compact three (SESAME's photo and mask) come from the model's
    ``example_inputs`` and exist at its own resolution only.
    """
    from sisgen.labelmap import instance_edges
    from sisgen.noise import noise_from_seeds

    h, w = size or model.resolution
    labels, instances = random_label_maps(model.num_classes, batch, h, w, seed)
    feeds: dict[str, torch.Tensor] = {"labels": torch.from_numpy(labels)}
    if model.uses_edges:
        feeds["edges"] = torch.from_numpy(instance_edges(instances)).unsqueeze(1)
    shape = model.noise_shape(h, w)
    if shape:
        spec = {"shape": list(shape), "distribution": "normal"}
        feeds["noise"] = noise_from_seeds(spec, [seed * 1000 + i for i in range(batch)])
    if "instances" in model.input_names:  # the intra-class position map's instance ids
        feeds["instances"] = torch.from_numpy(instances.astype(np.int64))
    extra = [n for n in model.input_names[3:] if n != "instances"]
    if extra:
        if (h, w) != tuple(model.resolution):
            raise ValueError(f"{type(model).__name__} takes {', '.join(extra)} at its own "
                             f"resolution {model.resolution} only")
        example = dict(zip(model.input_names, model.example_inputs(batch, seed), strict=True))
        feeds.update({n: example[n] for n in extra if example[n] is not None})
    return feeds


def _runner(path: Path, format: str) -> tuple[Any, dict[str, str]]:  # noqa: A002
    """A callable ``feeds -> images`` for the exported artifact, and its metadata."""
    if format == "onnx":
        from sisgen.engines.onnx_engine import OnnxEngine

        eng = OnnxEngine(path, providers=["CPUExecutionProvider"])
        return eng.run, eng.metadata
    if format == "torch":
        from sisgen.models import load_model

        loaded = load_model(path).export_form()

        def run_torch(feeds: dict[str, torch.Tensor]) -> torch.Tensor:
            with torch.inference_mode():
                return loaded(**feeds)

        return run_torch, {}
    import sisgen

    try:
        gen = sisgen.load(path)
    except ImportError as e:
        raise ParityUnavailableError(f"cannot run a {format} export here ({e})") from e
    meta = dict(getattr(gen.engine, "metadata", None) or {})

    def run_loaded(feeds: dict[str, torch.Tensor]) -> Any:
        rest = {k: v for k, v in feeds.items() if k not in ("labels", "edges", "noise")}
        return gen(feeds["labels"], feeds.get("edges"), feeds.get("noise"), **rest)

    return run_loaded, meta


def _as_float_nchw(out: Any) -> np.ndarray:
    """Engine output as float64 NCHW in [-1, 1] (uint8 NHWC bytes are converted)."""
    if hasattr(out, "detach"):
        out = out.detach().cpu().numpy()
    out = np.asarray(out)
    if out.dtype == np.uint8:
        return out.transpose(0, 3, 1, 2).astype(np.float64) / 127.5 - 1.0
    return out.astype(np.float64)


def check_parity(model: SISGenerator, exported: str | os.PathLike, format: str = "onnx",  # noqa: A002
                 batch: int = 2, seeds: Sequence[int] = (123,), tol: float | None = None,
                 sizes: Sequence[tuple[int, int]] | None = None) -> ParityResult:
    """Compare an exported model with torch on random blob label maps.

    Args:
        model: The torch model the export was made from (training form is fine).
        exported: The exported file (``.onnx``, engine, package) or model folder.
        format: ``onnx``, ``torch``, or any format ``sisgen.load`` opens (``tensorrt``...).
        batch: Batch size of each run (the dynamic batch axis is exercised when it differs
            from the trace batch).
        seeds: One run per seed (label maps, edges and noise all follow the seed).
        tol: Tolerance (of the max abs difference; of the mean for int8 exports); ``None``
            derives it from the export's metadata
            (``sisgen.precision``, ``sisgen.output``), see :func:`tolerance`.
        sizes: The ``(H, W)`` sizes to run at. Default: the model's resolution and, for a
            dynamic-HxW export (metadata ``sisgen.dynamic_hw`` = the size multiple ``m``),
            also ``(H + m, W + 2m)`` -- a size it was not traced at.

    Returns:
        The differences, the tolerance and whether the check passed.

    Raises:
        ParityUnavailableError: The runtime of ``format`` is not installed.
    """
    run, meta = _runner(Path(exported), format)
    precision = meta.get("sisgen.precision", "fp32")
    if sizes is None:
        sizes = default_sizes(model, int(meta.get("sisgen.dynamic_hw", "0") or 0))
    form = model.export_form().float().cpu()  # outside inference mode: folding reads params
    worst, total, count, uint8 = 0.0, 0.0, 0, False
    for seed, size in ((s, z) for z in sizes for s in seeds):
        feeds = parity_inputs(model, batch, seed, size)
        with torch.inference_mode():
            ref = form(**feeds).double().numpy()
        raw = run(feeds)
        uint8 = uint8 or getattr(raw, "dtype", None) in (np.uint8, torch.uint8)
        diff = np.abs(_as_float_nchw(raw) - ref)
        worst, total, count = max(worst, float(diff.max())), total + float(diff.sum()), \
            count + diff.size
    if tol is None:
        tol = tolerance(precision, uint8)
    mean = total / max(count, 1)
    runs = len(seeds) * len(sizes)
    passed = (mean if precision in MEAN_CHECKED else worst) <= tol
    return ParityResult(worst, mean, tol, passed, batch, runs, format, precision)


def default_sizes(model: SISGenerator, multiple: int = 0) -> list[tuple[int, int]]:
    """The model's resolution, plus ``(H + m, W + 2m)`` for a dynamic-HxW export.

    The second size is skipped for models with inputs that exist at their own resolution
    only (see :func:`parity_inputs`).
    """
    h, w = model.resolution
    sizes = [(h, w)]
    own_size_only = set(model.input_names[3:]) - {"instances"}
    if multiple and not own_size_only:
        sizes.append((h + multiple, w + 2 * multiple))
    return sizes
