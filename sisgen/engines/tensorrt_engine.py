"""The TensorRT backend: a serialized engine (``.engine`` / ``.plan``) run on torch tensors.

The plan is deserialized once; each call sets the input shapes of the batch
(``set_input_shape``), points TensorRT at torch's memory (``set_tensor_address`` with
``data_ptr()``: inputs in place, outputs freshly allocated by torch's caching allocator)
and enqueues on torch's current CUDA stream (``execute_async_v3``), so the work is ordered
with whatever torch does before and after on that stream and nothing is synchronized here.
Input dtypes are the engine's (int64 labels as built from the ONNX file; an int32-label
engine gets its labels cast). Engines are built by :func:`sisgen.export.tensorrt.build_engine`.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from ..errors import SisgenInputError

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

    def profile(self, name: str) -> list[tuple[int, ...]]:
        """``[min, opt, max]`` shapes of an input in the engine's (first) profile."""
        return [tuple(s) for s in self.engine.get_tensor_profile_shape(name, 0)]

    def __call__(self, labels: Any, edges: Any, noise: Any, **extra: Any) -> torch.Tensor:
        """Generate images as a torch tensor on the engine's GPU (first output)."""
        return self.run({"labels": labels, "edges": edges, "noise": noise, **extra})[
            self.output_names[0]]

    def run(self, feeds: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Run with inputs by name (torch tensors or arrays); returns every output by name.

        Raises:
            ValueError: A missing input, or a shape outside the optimization profile.
            RuntimeError: TensorRT failed to enqueue the work.
        """
        keep = []
        with torch.cuda.device(self.device):
            for name in self.input_names:
                value = feeds.get(name)
                if value is None:
                    raise ValueError(f"the TensorRT engine needs input {name!r}")
                t = torch.as_tensor(value).to(self.device, self.dtypes[name],
                                              non_blocking=True).contiguous()
                keep.append(t)
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
            stream = torch.cuda.current_stream(self.device)
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the TensorRT log)")
        return outputs
