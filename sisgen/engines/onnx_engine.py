"""The ONNX Runtime backend: CPU, CUDA (IO binding on torch tensors) or the TensorRT EP.

Providers are given by short name (``"tensorrt"``, ``"cuda"``, ``"cpu"``), by onnxruntime
name (``"CUDAExecutionProvider"``), or as ``(name, options)`` pairs; those the installed
onnxruntime lacks are dropped (the CPU always remains).

Two ways to run:

* host arrays (numpy, or CPU torch tensors on the plain path): ``session.run``, numpy out;
* torch tensors with ``io_binding`` on (the default for CUDA sessions): the inputs are bound
  in place by ``data_ptr`` (no host round trip for CUDA tensors), the output is bound to a
  preallocated torch tensor on the same device, and a torch tensor comes back.

Streams (CUDA): onnxruntime runs its kernels on a stream of its own, so the kernels that
wrote the inputs (on torch's current stream) must have finished when it reads them:

* by default the current torch stream is synchronized (the host waits) before each run;
* with ``share_stream`` the session is created on a dedicated torch stream
  (:attr:`OnnxEngine.compute_stream`, passed as the CUDA / TensorRT EP's
  ``user_compute_stream``). It must be a real stream: torch's default stream has the
  handle 0, which onnxruntime takes for "none" and silently ignores. Before each run that
  stream waits for the current one on the GPU (no host synchronization); after it the
  current stream waits for it. :meth:`sisgen.engines.Generator.run` enqueues whole batches
  on that stream, so both waits are free there.

onnxruntime synchronizes its stream at the end of a run, so the output is complete when
it is returned.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from ..errors import SisgenInputError

#: Short provider names -> onnxruntime execution providers.
PROVIDERS = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}

#: onnxruntime tensor type strings -> numpy / torch dtypes.
ORT_DTYPES: dict[str, tuple[type, torch.dtype]] = {
    "tensor(float)": (np.float32, torch.float32),
    "tensor(float16)": (np.float16, torch.float16),
    "tensor(double)": (np.float64, torch.float64),
    "tensor(int64)": (np.int64, torch.int64),
    "tensor(int32)": (np.int32, torch.int32),
    "tensor(uint8)": (np.uint8, torch.uint8),
    "tensor(int8)": (np.int8, torch.int8),
    "tensor(bool)": (np.bool_, torch.bool),
}

ProviderSpec = str | tuple[str, dict[str, Any]]


def resolve_providers(providers: Sequence[ProviderSpec] | None, available: Sequence[str],
                      trt_options: dict[str, Any] | None = None,
                      cuda_options: dict[str, Any] | None = None) -> list[ProviderSpec]:
    """Turn short names into onnxruntime providers, with options, keeping what is available.

    Args:
        providers: Short or full names, or ``(name, options)`` pairs; ``None`` gives CUDA
            (when available) then CPU.
        available: ``onnxruntime.get_available_providers()``.
        trt_options: Options for the TensorRT EP (merged under explicit pair options).
        cuda_options: Options for the CUDA EP.

    Raises:
        ValueError: An unknown short name.
    """
    if providers is None:
        providers = ["cuda", "cpu"]
    out: list[ProviderSpec] = []
    for spec in providers:
        name, opts = (spec, {}) if isinstance(spec, str) else (spec[0], dict(spec[1]))
        full = PROVIDERS.get(name.lower(), name)
        if not full.endswith("ExecutionProvider"):
            raise ValueError(f"unknown onnxruntime provider {name!r}; short names: "
                             f"{', '.join(sorted(PROVIDERS))}")
        if full not in available or any((p if isinstance(p, str) else p[0]) == full
                                        for p in out):
            continue
        extra = {"TensorrtExecutionProvider": trt_options,
                 "CUDAExecutionProvider": cuda_options}.get(full) or {}
        opts = {**extra, **opts}
        out.append((full, opts) if opts else full)
    if not any((p if isinstance(p, str) else p[0]) == "CPUExecutionProvider" for p in out):
        out.append("CPUExecutionProvider")
    return out


def tensorrt_ep_options(fp16: bool = False, cache_dir: str | os.PathLike | None = None,
                        workspace_gb: float | None = None, device_id: int = 0
                        ) -> dict[str, Any]:
    """Options of onnxruntime's TensorRT execution provider.

    Args:
        fp16: Let TensorRT pick fp16 kernels (``trt_fp16_enable``).
        cache_dir: Engine and timing cache folder (``trt_engine_cache_path``); engine
            building takes minutes, the cache makes later sessions start in seconds.
        workspace_gb: Builder workspace limit.
        device_id: CUDA device.
    """
    opts: dict[str, Any] = {"device_id": device_id, "trt_fp16_enable": bool(fp16)}
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
        opts.update(trt_engine_cache_enable=True, trt_engine_cache_path=os.fspath(cache_dir),
                    trt_timing_cache_enable=True, trt_timing_cache_path=os.fspath(cache_dir))
    if workspace_gb:
        opts["trt_max_workspace_size"] = int(workspace_gb * (1 << 30))
    return opts


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask; all of them where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def output_shape(declared: Sequence[Any], inputs: dict[str, torch.Tensor],
                 output_kind: str) -> tuple[int, ...] | None:
    """The concrete output shape for a batch, from the declared (partly symbolic) one.

    The batch axis comes from the inputs; symbolic spatial axes from the label map (NCHW
    float images, or NHWC for ``uint8_nhwc`` outputs). ``None`` when it cannot be inferred.
    """
    labels = inputs.get("labels")
    if labels is None or len(declared) != 4:
        return None
    b, (h, w) = labels.shape[0], labels.shape[-2:]
    fill = (b, h, w, 3) if output_kind == "uint8_nhwc" else (b, 3, h, w)
    return tuple(d if isinstance(d, int) and d > 0 else f for d, f in zip(declared, fill,
                                                                           strict=True))


class OnnxEngine:
    """Runs an exported ``.onnx`` generator with onnxruntime.

    Inputs the graph does not use (an edge map for a model without edges) are skipped.

    Args:
        path: The ONNX file.
        providers: Execution providers (see the module docstring); default CUDA when
            available, then CPU.
        threads: Intra-op threads (0: one per CPU this process may run on -- its affinity
            mask, which onnxruntime's own default ignores: pinned to one core it starts two
            threads that fight over it).
        spin: Let idle intra-op threads spin-wait for work (onnxruntime's default). Off by
            default: a run's prepare and write stages share the cores with the engine,
            and spinning threads take their cycles.
        io_binding: Bind torch tensors in place and return torch tensors; ``None`` turns it
            on when the session runs on CUDA or TensorRT.
        trt_options: TensorRT EP options (see :func:`tensorrt_ep_options`).
        share_stream: Run the CUDA / TensorRT EP on a dedicated torch stream
            (:attr:`compute_stream`, onnxruntime's ``user_compute_stream``) ordered with
            torch's by GPU-side waits, instead of synchronizing the host before each run.

    Attributes:
        compute_stream: The torch CUDA stream the session runs on (``share_stream``), or
            ``None``.
    """

    def __init__(self, path: str | os.PathLike, providers: Sequence[ProviderSpec] | None = None,
                 threads: int = 0, io_binding: bool | None = None,
                 trt_options: dict[str, Any] | None = None, share_stream: bool = False,
                 spin: bool = False):
        import onnxruntime as ort

        path = os.fspath(path)
        if not os.path.isfile(path):
            raise SisgenInputError("ONNX file not found", path)
        cuda_options: dict[str, Any] = {}
        self.compute_stream = None
        if share_stream and torch.cuda.is_available():
            # a stream of its own: torch's default stream is handle 0, which onnxruntime ignores
            self.compute_stream = torch.cuda.Stream()
            cuda_options = {"has_user_compute_stream": "1",
                            "user_compute_stream": str(self.compute_stream.cuda_stream)}
            trt_options = {**(trt_options or {}), **cuda_options}
        resolved = resolve_providers(providers, ort.get_available_providers(),
                                     trt_options=trt_options, cuda_options=cuda_options)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # errors only: graph-folding notices are not for users
        opts.intra_op_num_threads = int(threads) or usable_cpus()
        opts.inter_op_num_threads = 1  # sequential execution: one pool is enough
        if not spin:
            opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.threads = opts.intra_op_num_threads
        try:
            self.session = ort.InferenceSession(path, opts, providers=resolved)
        except Exception as e:  # onnxruntime raises several unrelated types
            raise SisgenInputError(f"onnxruntime cannot open the model ({e})", path) from e
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.input_types = {i.name: i.type for i in self.session.get_inputs()}
        out = self.session.get_outputs()[0]
        self.output_name, self.output_type, self.output_dims = out.name, out.type, out.shape
        self.providers = self.session.get_providers()
        on_gpu = self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        self.io_binding = on_gpu if io_binding is None else io_binding
        self.share_stream = self.compute_stream is not None
        self.output_kind = self.metadata.get("sisgen.output", "float_nchw")
        self.path = path
        if self.metadata.get("sisgen.precision") == "int8" and \
                self.providers[0] == "CUDAExecutionProvider":
            warnings.warn(f"{path} is an int8 export for the CPU: onnxruntime's CUDA provider "
                          "has no int8 convolutions and runs it in float with extra "
                          "(de)quantization, slower than the fp32 or fp16 export; on GPUs use "
                          "those, or the TensorRT provider", stacklevel=2)

    @property
    def device(self) -> torch.device:
        """Where inputs should be: the session's CUDA device with IO binding, else the CPU."""
        gpu = self.providers[0] in ("CUDAExecutionProvider", "TensorrtExecutionProvider")
        if not (self.io_binding and gpu and torch.cuda.is_available()):
            return torch.device("cpu")
        options = self.session.get_provider_options().get(self.providers[0], {})
        return torch.device("cuda", int(options.get("device_id", 0) or 0))

    @property
    def metadata(self) -> dict[str, str]:
        """The model's custom metadata (what ``sisgen export`` embedded)."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def __call__(self, labels: Any, edges: Any, noise: Any, **extra: Any) -> Any:
        """Generate images (NCHW float in [-1, 1], or NHWC uint8 for byte-output exports).

        Returns numpy arrays on the plain path, torch tensors with IO binding.
        """
        feeds = {"labels": labels, "edges": edges, "noise": noise, **extra}
        if self.io_binding:
            return self.run_torch(feeds)
        return self.run(feeds)

    def _feeds(self, feeds: dict[str, Any]) -> dict[str, Any]:
        out = {}
        for name in self.input_names:
            value = feeds.get(name)
            if value is None:
                raise ValueError(f"the ONNX model needs input {name!r}")
            out[name] = value
        return out

    def run(self, feeds: dict[str, Any]) -> np.ndarray:
        """Run with inputs by name (torch tensors or arrays); unused names are ignored."""
        inputs = {}
        for name, value in self._feeds(feeds).items():
            if hasattr(value, "detach"):
                value = value.detach().cpu().numpy()
            dtype = ORT_DTYPES.get(self.input_types[name], (np.float32,))[0]
            inputs[name] = np.ascontiguousarray(value, dtype=dtype)
        return self.session.run([self.output_name], inputs)[0]

    def run_torch(self, feeds: dict[str, Any]) -> torch.Tensor:
        """Run on torch tensors with IO binding; returns a torch tensor on their device."""
        tensors: dict[str, torch.Tensor] = {}
        for name, value in self._feeds(feeds).items():
            dtype = ORT_DTYPES.get(self.input_types[name], (None, torch.float32))[1]
            tensors[name] = torch.as_tensor(value).to(dtype=dtype).contiguous()
        device = tensors[self.input_names[0]].device
        if device.type == "cuda" and "CUDAExecutionProvider" not in self.providers \
                and "TensorrtExecutionProvider" not in self.providers:
            device = torch.device("cpu")
        tensors = {k: v.to(device) for k, v in tensors.items()}
        kind, index = device.type, device.index or 0
        binding = self.session.io_binding()
        for name, t in tensors.items():
            binding.bind_input(name, kind, index, ORT_DTYPES[self.input_types[name]][0],
                               tuple(t.shape), t.data_ptr())
        np_out, torch_out = ORT_DTYPES.get(self.output_type, (np.float32, torch.float32))
        shape = output_shape(self.output_dims, tensors, self.output_kind)
        out = None
        if shape is not None:
            out = torch.empty(shape, dtype=torch_out, device=device)
            binding.bind_output(self.output_name, kind, index, np_out, shape, out.data_ptr())
        else:
            binding.bind_output(self.output_name, kind, index)
        current = torch.cuda.current_stream(device) if kind == "cuda" else None
        if current is not None and self.compute_stream is not None:
            self.compute_stream.wait_stream(current)  # GPU-side: the inputs are written
        elif current is not None:
            current.synchronize()
        self.session.run_with_iobinding(binding)
        if current is not None and self.compute_stream is not None:
            current.wait_stream(self.compute_stream)
        if out is None:  # onnxruntime allocated it: copy out through the host
            out = torch.from_numpy(binding.copy_outputs_to_cpu()[0]).to(device)
        return out
