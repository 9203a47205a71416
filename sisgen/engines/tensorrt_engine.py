"""The TensorRT backend: a serialized engine (``.engine`` / ``.plan``) run on torch tensors.

The plan is deserialized once; each call sets the input shapes of the batch
(``set_input_shape``), points TensorRT at torch's memory (``set_tensor_address`` with
``data_ptr()``: inputs in place, outputs freshly allocated by torch's caching allocator)
and enqueues the work (``execute_async_v3``) without synchronizing anything here.

Streams: TensorRT must not be enqueued on the legacy default stream (handle 0, torch's
default): that stream synchronizes with every other stream of the device, and TensorRT
adds a synchronization of its own there. When torch's current stream is a real stream
(:meth:`sisgen.engines.Generator.run` runs each batch on a dedicated one) the work goes
there, ordered with what torch does before and after it; when it is the default stream,
the engine enqueues on a stream of its own, made to wait for the current stream before
and waited for by it after (GPU-side events, no host synchronization).

Batch sizes: a plan runs batches of its optimization profile's ``min..max``
(:attr:`TensorRTEngine.batch_range`; ``sisgen export tensorrt --batch 8`` builds
``1..8``). A larger batch runs as chunks of ``max`` and a smaller one is padded to ``min``
(:mod:`sisgen.engines.batching`), with a one-time warning naming the ``--batch`` to rebuild
with; :attr:`TensorRTEngine.max_batch` lets a caller size its batches instead.

Input dtypes are the engine's (int64 labels as built from the ONNX file; an int32-label
engine gets its labels cast). Engines are built by :func:`sisgen.export.tensorrt.build_engine`.
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import torch

from ..errors import SisgenInputError
from .batching import run_in_range

#: TensorRT ``DataType`` member names -> torch dtypes.
TRT_TO_TORCH: dict[str, torch.dtype] = {
    "FLOAT": torch.float32,
    "HALF": torch.float16,
    "BF16": torch.bfloat16,
    "INT8": torch.int8,
    "INT32": torch.int32,
    "INT64": torch.int64,
    "BOOL": torch.bool,
    "UINT8": torch.uint8,
}


def torch_dtype(trt_dtype: Any) -> torch.dtype:
    """The torch dtype of a ``tensorrt.DataType`` (by member name, so no import needed).

    Raises:
        TypeError: A type torch cannot hold (FP8, INT4, FP4...).
    """
    name = getattr(trt_dtype, "name", None) or str(trt_dtype).rsplit(".", 1)[-1]
    if name not in TRT_TO_TORCH:
        raise TypeError(f"TensorRT type {name} has no torch equivalent here")
    return TRT_TO_TORCH[name]


class TensorRTEngine:
    """Runs a TensorRT plan on a CUDA device.

    Args:
        path: The serialized engine.
        device: A CUDA device (default: the current one).

    Raises:
        ImportError: ``tensorrt`` is not installed.
        RuntimeError: No CUDA device.
        SisgenInputError: The plan cannot be deserialized (another TensorRT version or GPU).
    """

    def __init__(self, path: str | os.PathLike, device: str | torch.device | None = None):
        try:
            import tensorrt as trt
        except ImportError as e:
            raise ImportError("TensorRT engines need the tensorrt package "
                              "(pip install 'sisgen[tensorrt]')") from e

        if not torch.cuda.is_available():
            raise RuntimeError("TensorRT engines need a CUDA GPU")
        self.device = torch.device(device or "cuda")
        if self.device.type != "cuda":
            raise RuntimeError(f"TensorRT engines run on CUDA devices, not {self.device}")
        if self.device.index is None:
            self.device = torch.device("cuda", torch.cuda.current_device())
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise SisgenInputError("TensorRT engine not found", path)
        self.logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            self.runtime = trt.Runtime(self.logger)
            with open(path, "rb") as f:
                self.engine = self.runtime.deserialize_cuda_engine(f.read())
            if self.engine is None:
                raise SisgenInputError(
                    f"TensorRT {trt.__version__} cannot deserialize this engine (plans only "
                    "run on the TensorRT version and GPU model they were built with)", path)
            self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self.input_names = tuple(n for n in names if is_input[n])
        self.output_names = tuple(n for n in names if not is_input[n])
        self.dtypes = {n: torch_dtype(self.engine.get_tensor_dtype(n)) for n in names}
        self.path = path
        self.batch_range = self._batch_range()
        with torch.cuda.device(self.device):
            self.stream = torch.cuda.Stream(self.device)  # used when called on the default one
        self._warned = False

    def profile(self, name: str) -> list[tuple[int, ...]]:
        """``[min, opt, max]`` shapes of an input in the engine's (first) profile."""
        return [tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0)]

    def _batch_range(self) -> tuple[int, int]:
        """``(min, max)`` batch every input's profile allows (a static batch: both)."""
        low, high = 1, None
        for name in self.input_names:
            first = tuple(self.engine.get_tensor_shape(name))[0]
            lo, hi = (self.profile(name)[0][0], self.profile(name)[2][0]) if first < 0 \
                else (first, first)
            low, high = max(low, int(lo)), int(hi) if high is None else min(high, int(hi))
        if high is None or high < low:
            raise SisgenInputError(f"the engine's inputs allow no common batch size "
                                   f"({low}..{high})", self.path)
        return low, high

    @property
    def max_batch(self) -> int:
        """The largest batch the engine runs whole (its profile's max)."""
        return self.batch_range[1]

    def __call__(self, labels: Any, edges: Any, noise: Any, **extra: Any) -> torch.Tensor:
        """Generate images as a torch tensor on the engine's GPU (first output)."""
        return self.run({"labels": labels, "edges": edges, "noise": noise, **extra})[
            self.output_names[0]]

    def run(self, feeds: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Run with inputs by name (torch tensors or arrays); returns every output by name.

        Batches outside :attr:`batch_range` run in chunks (see the module docstring).

        Raises:
            ValueError: A missing input, or a shape outside the optimization profile.
            RuntimeError: TensorRT failed to enqueue the work.
        """
        tensors = {}
        with torch.cuda.device(self.device):
            for name in self.input_names:
                value = feeds.get(name)
                if value is None:
                    raise ValueError(f"the TensorRT engine needs input {name!r}")
                tensors[name] = torch.as_tensor(value).to(self.device, self.dtypes[name],
                                                          non_blocking=True).contiguous()
            low, high = self.batch_range
            return run_in_range(self._enqueue, tensors, low, high, self._warn_split)

    def _warn_split(self, batch: int) -> None:
        if not self._warned:
            self._warned = True
            low, high = self.batch_range
            warnings.warn(
                f"the TensorRT engine {os.path.basename(self.path)} runs batches of {low} to "
                f"{high}; batch {batch} runs as chunks of {high} (rebuild it with "
                f"`sisgen export tensorrt --batch {batch}` to run such batches whole)",
                stacklevel=4)

    def _enqueue(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Enqueue one batch inside the profile; outputs by name (see the module docstring)."""
        tensors = {k: t.contiguous() for k, t in tensors.items()}  # alive until enqueued
        for name, t in tensors.items():
            if not self.context.set_input_shape(name, tuple(t.shape)):
                raise ValueError(f"input {name!r} of shape {tuple(t.shape)} is outside the "
                                 f"engine's profile (min, opt, max) {self.profile(name)}")
            self.context.set_tensor_address(name, t.data_ptr())
        outputs = {}
        for name in self.output_names:
            shape = tuple(self.context.get_tensor_shape(name))
            out = torch.empty(shape, dtype=self.dtypes[name], device=self.device)
            self.context.set_tensor_address(name, out.data_ptr())
            outputs[name] = out
        current = torch.cuda.current_stream(self.device)
        legacy = current.cuda_stream == torch.cuda.default_stream(self.device).cuda_stream
        stream = self.stream if legacy else current
        if legacy:
            stream.wait_stream(current)  # the inputs were written on the current stream
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        if legacy:
            current.wait_stream(stream)  # the outputs are read on the current stream
        return outputs
