"""``model.export(format=...)``: one entry point for every export format.

Each format accepts the arguments listed in :data:`FORMAT_ARGS`; anything else is an error
that names the format and its accepted arguments (the Ultralytics exporter's contract).

| format | writes | arguments |
|---|---|---|
| ``onnx`` | one ``.onnx`` (metadata inside) | ``file opset half dynamic simplify batch`` |
|  |  | ``uint8 check optimize int8 calibration`` |
| ``torch`` | ``config.json`` + ``model.safetensors`` | ``file check`` |
| ``tensorrt`` | ``.engine`` + ``.engine.json`` + ``.onnx`` | see :data:`FORMAT_ARGS` |
| ``aot`` | AOTInductor ``.pt2`` (metadata inside) | ``file batch dynamic device half`` |

``tensorrt``: ``dynamic`` as for onnx (H and W; the batch axis is always dynamic, its
profile is ``batch=(min, opt, max)``); ``aot``: ``dynamic`` is the batch axis (1..batch).

``onnx``: ``half`` fp16 with normalizations kept in fp32; ``dynamic`` dynamic H and W
(the batch axis is always dynamic) where the architecture allows; ``simplify`` onnxslim
(warns on failure); ``batch`` the parity-check batch; ``uint8`` byte output; ``check``
(default on) the onnxruntime parity check, whose failure raises; ``optimize`` the exporter's
graph optimizer; ``int8`` static int8 quantization for CPU onnxruntime, calibrated on
``calibration`` (input batches, :func:`sisgen.export.quantize.calibration_feeds`; default
random blob maps). ``torch``: ``check`` reloads the folder and compares (default off).
Parity tolerances (max abs, images in [-1, 1]): fp32 1e-4, fp16 2e-2, plus one level for
uint8 output; int8 5e-2 of the *mean* abs difference (:mod:`sisgen.export.check`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sisgen.errors import SisgenInputError
from sisgen.models.base import SISGenerator

#: The arguments each format accepts (besides ``format`` itself).
FORMAT_ARGS: dict[str, tuple[str, ...]] = {
    "onnx": ("file", "opset", "half", "dynamic", "simplify", "batch", "uint8", "check",
             "optimize", "int8", "calibration"),
    "torch": ("file", "check"),
    "tensorrt": ("file", "half", "dynamic", "batch", "size", "workspace_gb", "timing_cache",
                 "cache_dir", "onnx_file", "opset"),
    "aot": ("file", "batch", "dynamic", "device", "half"),
}


def export(model: SISGenerator, format: str = "onnx", **kwargs: Any) -> Path:  # noqa: A002
    """Export ``model`` to ``format``; see :data:`FORMAT_ARGS` for the accepted arguments.

    Returns:
        The written file or folder.

    Raises:
        SisgenInputError: Unknown format, or an argument the format does not accept.
    """
    if format not in FORMAT_ARGS:
        raise SisgenInputError(
            f"unknown export format {format!r}; available: {', '.join(sorted(FORMAT_ARGS))}")
    bad = sorted(set(kwargs) - set(FORMAT_ARGS[format]))
    if bad:
        raise SisgenInputError(
            f"export format {format!r} does not take {', '.join(bad)}; it accepts "
            f"{', '.join(FORMAT_ARGS[format])}")
    name = model.model_name or type(model).__name__.lower()
    if format == "onnx":
        from .onnx import export_onnx

        file = Path(kwargs.pop("file", f"{name}.onnx"))
        opts = {k: kwargs[k] for k in ("opset", "half", "simplify", "check", "optimize",
                                       "int8", "calibration") if k in kwargs}
        path, parity = export_onnx(model, file, uint8_output=bool(kwargs.get("uint8", False)),
                                   dynamic_hw=bool(kwargs.get("dynamic", False)),
                                   check_batch=int(kwargs.get("batch", 2)), **opts)
        _raise_on_failure(parity, path)
        return path
    if format == "tensorrt":
        from .tensorrt import export_tensorrt

        if "dynamic" in kwargs:  # as for onnx: dynamic H and W (the batch always is)
            kwargs["dynamic_hw"] = kwargs.pop("dynamic")
        return export_tensorrt(model, kwargs.pop("file", f"{name}.engine"), **kwargs)
    if format == "aot":
        from .aot import export_aot

        return export_aot(model, kwargs.pop("file", f"{name}.pt2"), **kwargs)
    folder = model.save(Path(os.fspath(kwargs.get("file", name))))
    if kwargs.get("check"):
        from .check import check_parity

        _raise_on_failure(check_parity(model, folder, "torch"), folder)
    return folder


def _raise_on_failure(parity: Any, path: Path) -> None:
    """Raise when a parity check ran and failed."""
    if parity is not None and not parity.passed:
        raise SisgenInputError(f"the export failed its parity check ({parity})", path)
