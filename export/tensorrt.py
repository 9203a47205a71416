"""TensorRT engines built from sisgen ONNX files (TensorRT 10 / 11 Python API).

:func:`build_engine` parses the ONNX file into a *strongly typed* network: every tensor's
type follows from the graph, so the precision is the ONNX file's -- an fp16 engine comes from
an fp16 ONNX (``export_onnx(..., half=True)``), not from builder precision flags (TensorRT 11
removed weakly typed networks and those flags). Labels stay int64: TensorRT 10 added INT64
as a network I/O type, and the ONNX parser keeps int64 tensors.

One optimization profile covers the dynamic axes: the batch (``batch=(min, opt, max)``, or
an int ``b`` meaning ``(1, b, b)`` -- full batches plus a short last one) and, for ONNX
files with dynamic height/width, the size (``size=((h, w) min, opt, max)``; default the
model resolution). Build with the batch size the run will use (``sisgen export tensorrt
--batch 32`` for ``sisgen generate --batch-size 32``): the engine runs a larger batch as
chunks of its profile's max, with a warning (:mod:`sisgen.engines.tensorrt_engine`).
A timing cache file (``timing_cache=``) is loaded before and saved after
the build, so rebuilding a similar network skips most kernel timing. An engine cache folder
(``cache_dir=``) keeps built plans keyed by :func:`engine_cache_key` -- sha256 of the ONNX
bytes, the TensorRT version, the GPU name and compute capability, and the profile shapes --
so a second build of the same file on the same machine is a copy.

TensorRT plans hold no free-form metadata: the ONNX file's ``sisgen.*`` metadata plus a
``sisgen.engine`` record (TensorRT version, GPU, profile, ONNX hash) go to the sidecar
``<file>.json`` (:func:`sisgen.engines.metadata.write_sidecar`), which
``sisgen.load("x.engine")`` reads.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sisgen.engines.metadata import sidecar_path, write_sidecar
from sisgen.errors import SisgenInputError

log = logging.getLogger(__name__)

Shape = tuple[int, ...]
#: ``(min, opt, max)`` shapes of one input.
ProfileShapes = tuple[Shape, Shape, Shape]
#: An ONNX input's dims: ints where static, ``None`` where dynamic.
Dims = tuple[int | None, ...]


# ---------------------------------------------------------------- pure-python helpers
def normalize_batch(batch: int | Sequence[int]) -> tuple[int, int, int]:
    """``batch`` as ``(min, opt, max)``: an int ``b`` is ``(1, b, b)``.

    Raises:
        SisgenInputError: Not ``1 <= min <= opt <= max``.
    """
    if isinstance(batch, int):
        trio = (1, batch, batch)
    else:
        trio = tuple(int(b) for b in batch)
        if len(trio) != 3:
            raise SisgenInputError(f"batch must be an int or (min, opt, max), not {batch!r}")
    if not 1 <= trio[0] <= trio[1] <= trio[2]:
        raise SisgenInputError(f"batch profile must satisfy 1 <= min <= opt <= max: {trio}")
    return trio  # type: ignore[return-value]


def _normalize_size(size: Any, resolution: Sequence[int]) -> tuple[tuple[int, int], ...]:
    if size is None:
        return (tuple(resolution),) * 3  # type: ignore[return-value]
    if len(size) == 2 and all(isinstance(s, int) for s in size):
        return (tuple(size),) * 3  # type: ignore[return-value]
    trio = tuple((int(h), int(w)) for h, w in size)
    if len(trio) != 3 or not all(a <= b <= c for a, b, c in zip(*trio, strict=True)):
        raise SisgenInputError(f"size must be (h, w) or three increasing (h, w): {size!r}")
    return trio


def profile_shapes(inputs: dict[str, Dims], batch: int | Sequence[int],
                   resolution: Sequence[int], noise_shape: Sequence[int] = (),
                   size: Any = None) -> dict[str, ProfileShapes]:
    """The optimization-profile shapes of every input.

    Axis 0, when dynamic, is the batch. Dynamic trailing two axes are height and width:
    for the label map and edges they are the image size; for a spatial noise input they
    scale with it by the ratio of the noise spec to the model resolution (OASIS-style
    noise at full size, or a downsampled map).

    Args:
        inputs: Input name -> dims (``None`` for dynamic axes), e.g. from
            :func:`onnx_input_dims`.
        batch: ``(min, opt, max)`` or an int (see :func:`normalize_batch`).
        resolution: The model's ``(H, W)`` (``sisgen.resolution``).
        noise_shape: The per-sample noise shape at that resolution (``sisgen.noise``).
        size: ``(h, w)``, or ``(min, opt, max)`` sizes, for dynamic spatial axes.

    Raises:
        SisgenInputError: A dynamic axis that is neither batch nor height/width.
    """
    batches = normalize_batch(batch)
    sizes = _normalize_size(size, resolution)
    res_h, res_w = (int(r) for r in resolution)
    out: dict[str, ProfileShapes] = {}
    for name, dims in inputs.items():
        scale = (1.0, 1.0)
        if name == "noise" and len(noise_shape) >= 2:
            scale = (noise_shape[-2] / res_h, noise_shape[-1] / res_w)
        points = []
        for b, (h, w) in zip(batches, sizes, strict=True):
            shape = []
            for axis, d in enumerate(dims):
                if d is not None:
                    shape.append(int(d))
                elif axis == 0:
                    shape.append(b)
                elif axis == len(dims) - 2 and axis > 0:
                    shape.append(max(1, round(h * scale[0])))
                elif axis == len(dims) - 1 and axis > 1:
                    shape.append(max(1, round(w * scale[1])))
                else:
                    raise SisgenInputError(
                        f"input {name!r} has a dynamic axis {axis} that is neither the batch "
                        f"nor height/width (dims {dims})")
            points.append(tuple(shape))
        out[name] = tuple(points)  # type: ignore[assignment]
    return out


def onnx_input_dims(proto: Any) -> dict[str, Dims]:
    """The graph inputs of an ``onnx.ModelProto`` with their dims (``None`` if dynamic)."""
    inits = {t.name for t in proto.graph.initializer}
    out: dict[str, Dims] = {}
    for inp in proto.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        out[inp.name] = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0
                              else None for d in dims)
    return out


def onnx_precision(proto: Any) -> str:
    """``"fp16"`` when the graph's float inputs or weights are float16, else ``"fp32"``."""
    import onnx

    half = onnx.TensorProto.FLOAT16
    if any(t.data_type == half for t in proto.graph.initializer):
        return "fp16"
    if any(i.type.tensor_type.elem_type == half for i in proto.graph.input):
        return "fp16"
    return "fp32"


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def engine_cache_key(onnx_sha256: str, trt_version: str, gpu_name: str,
                     compute_capability: str, profiles: dict[str, ProfileShapes]) -> str:
    """The engine-cache key: what decides whether a built plan can be reused.

    A plan is valid only for the exact TensorRT version and GPU model it was built on, and
    for the optimization profile it was built with; the ONNX hash covers the weights,
    graph and precision (strongly typed networks take their types from the graph).
    """
    record = {
        "onnx": onnx_sha256,
        "tensorrt": trt_version,
        "gpu": gpu_name,
        "cc": compute_capability,
        "profiles": {k: [list(s) for s in v] for k, v in sorted(profiles.items())},
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()[:32]


def gpu_identity(device: int = 0) -> tuple[str, str]:
    """``(name, "sm_XY")`` of a CUDA device (via torch).

    Raises:
        RuntimeError: No CUDA device.
    """
    import torch

    if not torch.cuda.is_available():
        raise RuntimeError("building a TensorRT engine needs a CUDA GPU")
    major, minor = torch.cuda.get_device_capability(device)
    return torch.cuda.get_device_name(device), f"sm_{major}{minor}"


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


# --------------------------------------------------------------------------- building
def _build_plan(trt: Any, onnx_path: Path, profiles: dict[str, ProfileShapes],
                workspace_gb: float, timing_cache: Path | None, verbose: bool) -> bytes:
    """Parse, configure and build; returns the serialized plan."""
    logger = trt.Logger(trt.Logger.VERBOSE if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Strongly typed: types come from the graph (always on, and the flag ignored, in TRT 11).
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    network = builder.create_network(0 if flag is None else 1 << int(flag))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise SisgenInputError(f"TensorRT cannot parse the ONNX file: {errors}", onnx_path)
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * (1 << 30)))
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        name = network.get_input(i).name
        if name not in profiles:
            raise SisgenInputError(f"no profile shapes for network input {name!r}", onnx_path)
        profile.set_shape(name, *profiles[name])
    config.add_optimization_profile(profile)
    blob = timing_cache.read_bytes() if timing_cache and timing_cache.is_file() else b""
    cache = config.create_timing_cache(blob)
    config.set_timing_cache(cache, False)  # ignore_mismatch=False: a foreign cache is skipped
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise RuntimeError(f"TensorRT failed to build an engine from {onnx_path} "
                           "(see the TensorRT log above)")
    if timing_cache is not None:
        _write_atomic(timing_cache, bytes(config.get_timing_cache().serialize()))
    return bytes(plan)


def build_engine(onnx_path: str | os.PathLike, file: str | os.PathLike | None = None, *,
                 half: bool | None = None, batch: int | Sequence[int] = 8,
                 size: Any = None, workspace_gb: float = 4.0,
                 timing_cache: str | os.PathLike | None = None,
                 cache_dir: str | os.PathLike | None = None, verbose: bool = False) -> Path:
    """Build a serialized TensorRT engine (``.engine`` plan + ``.engine.json`` metadata).

    Args:
        onnx_path: A sisgen ONNX export (its ``sisgen.*`` metadata is required).
        file: Output plan (default: the ONNX path with suffix ``.engine``).
        half: Expected precision: ``True`` requires an fp16 ONNX, ``False`` an fp32 one,
            ``None`` takes the file as it is (strongly typed: the ONNX decides).
        batch: ``(min, opt, max)`` batch of the optimization profile, or an int ``b`` for
            ``(1, b, b)``.
        size: For ONNX files with dynamic height/width: ``(h, w)`` or ``(min, opt, max)``
            sizes (default: the model resolution).
        workspace_gb: Builder workspace memory limit.
        timing_cache: Timing-cache file, loaded if present and saved after the build.
        cache_dir: Engine cache folder (see :func:`engine_cache_key`).
        verbose: TensorRT's verbose log.

    Returns:
        The plan's path.

    Raises:
        SisgenInputError: Missing file or metadata, wrong precision, bad profile, or a
            graph TensorRT cannot parse.
        ImportError: ``tensorrt`` is not installed.
        RuntimeError: No CUDA GPU, or the build failed.
    """
    import onnx

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise SisgenInputError("ONNX file not found", onnx_path)
    proto = onnx.load(str(onnx_path), load_external_data=False)
    meta = {p.key: p.value for p in proto.metadata_props}
    if "sisgen.resolution" not in meta:
        raise SisgenInputError("ONNX file has no sisgen metadata (export it with "
                               "sisgen.export.export_onnx)", onnx_path)
    precision = onnx_precision(proto)
    if half is not None and (precision == "fp16") != bool(half):
        raise SisgenInputError(
            f"half={half} but the ONNX file is {precision}; TensorRT builds strongly typed "
            "networks whose precision is the ONNX file's (export with half=True for fp16)",
            onnx_path)
    noise = json.loads(meta.get("sisgen.noise") or "{}").get("shape") or ()
    profiles = profile_shapes(onnx_input_dims(proto), batch,
                              json.loads(meta["sisgen.resolution"]), noise, size)
    del proto
    import tensorrt as trt

    gpu, cc = gpu_identity()
    digest = file_sha256(onnx_path)
    key = engine_cache_key(digest, trt.__version__, gpu, cc, profiles)
    file = Path(file) if file is not None else onnx_path.with_suffix(".engine")
    meta["sisgen.engine"] = json.dumps({
        "tensorrt": trt.__version__, "gpu": gpu, "compute_capability": cc,
        "precision": precision, "onnx_sha256": digest, "cache_key": key,
        "profiles": {k: [list(s) for s in v] for k, v in profiles.items()},
    })
    cached = Path(cache_dir) / f"{key}.engine" if cache_dir is not None else None
    if cached is not None and cached.is_file():
        log.info("TensorRT engine cache hit: %s", cached)
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(f".{file.name}.tmp")
        shutil.copyfile(cached, tmp)
        os.replace(tmp, file)
    else:
        plan = _build_plan(trt, onnx_path, profiles, workspace_gb,
                           Path(timing_cache) if timing_cache is not None else None, verbose)
        _write_atomic(file, plan)
        if cached is not None:
            _write_atomic(cached, plan)
            write_sidecar(cached, meta)
    write_sidecar(file, meta)
    return file


__all__ = ["build_engine", "engine_cache_key", "file_sha256", "normalize_batch",
           "onnx_input_dims", "onnx_precision", "profile_shapes", "sidecar_path"]


def export_tensorrt(model: Any, file: str | os.PathLike, *, half: bool = False,
                    dynamic_hw: bool = False, onnx_file: str | os.PathLike | None = None,
                    opset: int = 18, **build_options: Any) -> Path:
    """Export ``model`` to ONNX (beside the engine, or ``onnx_file``), then build an engine.

    ``half=True`` asks the ONNX exporter for an fp16 graph (``export_onnx(half=True)``);
    the strongly typed TensorRT network then runs in fp16.

    Args:
        model: The generator.
        file: The engine path (``.engine``).
        half: fp16 engine.
        dynamic_hw: Dynamic height/width (``export_onnx(dynamic_hw=True)``); give the
            profile's sizes with ``size=``.
        onnx_file: Where the intermediate ONNX goes (default: ``file`` with ``.onnx``).
        opset: ONNX opset.
        **build_options: :func:`build_engine` options (``batch``, ``size``, ``workspace_gb``,
            ``timing_cache``, ``cache_dir``).

    Raises:
        SisgenInputError: ``half`` / ``dynamic_hw`` while the ONNX exporter lacks them.
    """
    import inspect

    from .onnx import export_onnx

    file = Path(file)
    onnx_file = Path(onnx_file) if onnx_file is not None else file.with_suffix(".onnx")
    opts: dict[str, Any] = {"opset": opset}
    accepted = inspect.signature(export_onnx).parameters
    for name, wanted in (("half", half), ("dynamic_hw", dynamic_hw)):
        if wanted:
            if name not in accepted:
                raise SisgenInputError(f"{name}=True needs export_onnx({name}=...), which "
                                       "this version lacks")
            opts[name] = True
    export_onnx(model, onnx_file, **opts)
    return build_engine(onnx_file, file, half=half, **build_options)
