"""``model.export(format=...)``: one entry point for every export format.

Each format accepts the arguments listed in :data:`FORMAT_ARGS`; anything else is an error
that names the format and its accepted arguments (the Ultralytics exporter's contract).

| format | writes | arguments |
|---|---|---|
| ``onnx`` | one ``.onnx``, metadata inside | ``file opset uint8 check optimize`` |
| ``torch`` | ``config.json`` + ``model.safetensors`` | ``file`` |
| ``tensorrt`` | ``.engine`` + ``.engine.json`` + ``.onnx`` | see :data:`FORMAT_ARGS` |
| ``aot`` | AOTInductor ``.pt2`` (metadata inside) | ``file batch dynamic device half`` |

``tensorrt``: ``dynamic`` as for onnx (H and W; the batch axis is always dynamic, its
profile is ``batch=(min, opt, max)``); ``aot``: ``dynamic`` is the batch axis (1..batch).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sisgen.errors import SisgenInputError
from sisgen.models.base import SISGenerator

#: The arguments each format accepts (besides ``format`` itself).
FORMAT_ARGS: dict[str, tuple[str, ...]] = {
    "onnx": ("file", "opset", "uint8", "check", "optimize"),
    "torch": ("file",),
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
        opts = {k: kwargs[k] for k in ("opset", "check", "optimize") if k in kwargs}
        path, parity = export_onnx(model, file, uint8_output=bool(kwargs.get("uint8", False)),
                                   **opts)
        if parity is not None and parity.max_abs > 1e-4 and not kwargs.get("uint8"):
            raise SisgenInputError(f"exported ONNX failed its parity check ({parity})", path)
        return path
    if format == "tensorrt":
        from .tensorrt import export_tensorrt

        if "dynamic" in kwargs:  # as for onnx: dynamic H and W (the batch always is)
            kwargs["dynamic_hw"] = kwargs.pop("dynamic")
        return export_tensorrt(model, kwargs.pop("file", f"{name}.engine"), **kwargs)
    if format == "aot":
        from .aot import export_aot

        return export_aot(model, kwargs.pop("file", f"{name}.pt2"), **kwargs)
    folder = Path(os.fspath(kwargs.get("file", name)))
    return model.save(folder)
