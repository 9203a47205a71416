"""Engines: one protocol, several backends.

``torch`` (eager, ``torch.compile``, CUDA graphs), ``onnxruntime`` (CPU, CUDA with IO
binding, the TensorRT execution provider), ``tensorrt`` (a serialized plan) and ``aot``
(an AOTInductor ``.pt2`` package). :func:`load_generator` picks the backend from the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import SisgenInputError
from ..noise import noise_from_seeds
from .base import Engine, Generator, images_to_uint8
from .inputs import EngineBatch, InputSpec
from .metadata import generator_from_metadata, read_sidecar

# noise_from_seeds lives in sisgen.noise; re-exported here for older imports
__all__ = ["Engine", "EngineBatch", "Generator", "InputSpec", "images_to_uint8",
           "load_generator", "noise_from_seeds"]

#: File suffixes of serialized TensorRT engines.
TENSORRT_SUFFIXES = (".engine", ".plan", ".trt")
#: Options only the torch backend (model folders) takes.
TORCH_OPTIONS = ("half", "channels_last")


def load_generator(path: str | os.PathLike, device: str | None = None,
                   providers: list[Any] | None = None, threads: int = 0,
                   mode: str = "eager", backend: str | None = None,
                   **engine_options: Any) -> Generator:
    """Open a model folder / ``.safetensors``, an ``.onnx``, ``.engine``/``.plan`` or ``.pt2``.

    Args:
        path: What to open.
        device: Torch device (torch, TensorRT and AOT backends; CUDA for TensorRT).
        providers: onnxruntime providers for ``.onnx`` files (short names ``tensorrt``,
            ``cuda``, ``cpu`` or full names).
        threads: onnxruntime intra-op threads (0 = default).
        mode: Torch backend mode: ``eager``, ``compile`` or ``cudagraphs`` (model folders).
        backend: Force a backend for the file type where there is a choice: ``torch``
            (model folders), ``onnxruntime`` (``.onnx``); ``None`` picks by suffix.
        **engine_options: Passed to the backend's constructor (``half``, ``channels_last``
            for torch; ``io_binding``, ``trt_options``, ``share_stream`` for onnxruntime).
            ``half`` and ``channels_last`` given as false are dropped for other backends.

    Raises:
        SisgenInputError: The path does not exist, is not a sisgen model, its metadata
            (the ``.json`` sidecar of a TensorRT engine) is missing, or a torch-only option
            (``mode`` other than eager, ``half``, ``channels_last``) is given for an
            exported file.
    """
    path = Path(path)
    if not path.exists():
        raise SisgenInputError("no such model file or folder", path)
    suffix = path.suffix.lower()
    kind = backend or {".onnx": "onnxruntime", ".pt2": "aot"}.get(
        suffix, "tensorrt" if suffix in TENSORRT_SUFFIXES else "torch")
    expected = {".onnx": ("onnxruntime",), ".pt2": ("aot",)}.get(
        suffix, ("tensorrt",) if suffix in TENSORRT_SUFFIXES else ("torch",))
    if kind not in expected:
        raise SisgenInputError(f"backend {kind!r} cannot open a {suffix or 'folder'} "
                               f"(use {expected[0]!r})", path)
    if kind != "torch":
        _check_torch_options(kind, suffix, mode, engine_options, path)
    if kind == "onnxruntime":
        from .onnx_engine import OnnxEngine

        eng = OnnxEngine(path, providers=providers, threads=threads, **engine_options)
        return generator_from_metadata(eng, eng.metadata, path, "onnxruntime")
    if kind == "tensorrt":
        meta = read_sidecar(path)  # before importing tensorrt: a clear error first
        from .tensorrt_engine import TensorRTEngine

        return generator_from_metadata(TensorRTEngine(path, device, **engine_options), meta,
                                       path, "tensorrt")
    if kind == "aot":
        from .aot_engine import AOTEngine

        eng = AOTEngine(path, device, **engine_options)
        return generator_from_metadata(eng, eng.metadata, path, "aot")
    from ..models import load_model
    from .torch_engine import TorchEngine

    model = load_model(path)
    name = "torch" if mode == "eager" else f"torch-{mode}"
    try:
        engine = TorchEngine(model, device, mode=mode, **engine_options)
    except ValueError as e:  # an unknown mode or half type, cudagraphs without CUDA
        raise SisgenInputError(str(e), path) from e
    return Generator.from_model(engine, model, backend=name)


def _check_torch_options(kind: str, suffix: str, mode: str, options: dict[str, Any],
                         path: Path) -> None:
    """Refuse torch-only options for an exported file; drop those given as false."""
    given = [f"mode={mode!r}"] if mode != "eager" else []
    given += [k for k in TORCH_OPTIONS if options.get(k)]
    if given:
        raise SisgenInputError(
            f"{', '.join(given)} only apply to model folders (the torch backend); a {suffix} "
            f"file runs on {kind} as it was exported (export it with --half for fp16)", path)
    for k in TORCH_OPTIONS:
        options.pop(k, None)
