"""The PyTorch backend: eager, ``torch.compile`` or CUDA graphs, in fp32 or half precision.

Modes:

* ``eager`` -- the export form under ``torch.inference_mode``.
* ``compile`` -- ``torch.compile`` (Inductor). On CUDA the default compile mode is
  ``max-autotune-no-cudagraphs`` (autotuned kernels, launches left to the caller); pass
  ``compile_mode="reduce-overhead"`` to let Inductor add its own CUDA graphs. On the CPU it
  works too where a C++ compiler is present (the first call compiles: about a minute for a
  tiny SPADE on a loaded 2-core machine).
* ``cudagraphs`` -- hand-made CUDA graphs: one graph per input-shape signature, captured after
  warm-up on a side stream from static input buffers, then replayed after copying each batch
  into those buffers. A batch smaller than one already captured (the short last batch of a
  run) is replayed in the larger graph and sliced, not re-captured. CUDA only.

``half=True`` runs under autocast: float16 on CUDA, bfloat16 on the CPU (where fp16
convolutions are slow); ``half="fp16"`` / ``"bf16"`` pick the type. Autocast keeps
reductions and normalization statistics in float32, which the SPADE-family norms need;
images come back as float32. ``channels_last`` stores weights and 4-D inputs NHWC (faster
tensor-core convolutions on recent GPUs).

On CUDA the engine sets ``torch.backends.cudnn.benchmark = True`` (a process-wide switch;
``cudnn_benchmark=False`` leaves it alone): a generation run feeds one batch shape over and
over, so timing cuDNN's convolution algorithms once per shape pays for itself at once.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import torch

from ..models.base import SISGenerator

MODES = ("eager", "compile", "cudagraphs")
#: ``half`` values -> autocast dtype (``True``: float16 on CUDA, bfloat16 on the CPU).
HALF_TYPES = {"fp16": torch.float16, "float16": torch.float16, "bf16": torch.bfloat16,
              "bfloat16": torch.bfloat16}


class _CapturedGraph:
    """One CUDA graph of ``fn`` over static input buffers shaped like ``example``."""

    def __init__(self, fn: Callable[..., torch.Tensor], example: Sequence[torch.Tensor | None],
                 warmup: int = 2):
        self.static = [None if t is None else t.clone() for t in example]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up: cuDNN autotuning, lazy allocations
            for _ in range(warmup):
                fn(*self.static)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = fn(*self.static)
        self.batch = next(t.shape[0] for t in example if t is not None)

    def __call__(self, inputs: Sequence[torch.Tensor | None]) -> torch.Tensor:
        b = next(t.shape[0] for t in inputs if t is not None)
        for buf, x in zip(self.static, inputs, strict=True):
            if buf is not None:
                buf[:b].copy_(x, non_blocking=True)
        self.graph.replay()
        return self.out[:b].clone()


class TorchEngine:
    """Runs a :class:`SISGenerator` (its export form) in one of :data:`MODES`.

    Args:
        model: The generator.
        device: Where to run (default: CUDA when available).
        mode: ``eager``, ``compile`` or ``cudagraphs`` (see the module docstring).
        half: Autocast: ``True`` for float16 (CUDA) / bfloat16 (CPU), or ``"fp16"`` /
            ``"bf16"``.
        channels_last: NHWC memory format for weights and 4-D inputs.
        compile_mode: ``torch.compile`` mode (default: ``max-autotune-no-cudagraphs`` on CUDA,
            Inductor's default on the CPU).
        max_graphs: Most CUDA graphs kept (``cudagraphs`` mode); more shapes raise.
        cudnn_benchmark: On CUDA, turn on ``torch.backends.cudnn.benchmark``.

    Raises:
        ValueError: Unknown mode or half type, or ``cudagraphs`` without a CUDA device.
    """

    input_names = ("labels", "edges", "noise")

    def __init__(self, model: SISGenerator, device: str | torch.device | None = None,
                 mode: str = "eager", half: bool | str = False, channels_last: bool = False,
                 compile_mode: str | None = None, max_graphs: int = 8,
                 cudnn_benchmark: bool = True):
        if mode not in MODES:
            raise ValueError(f"unknown torch engine mode {mode!r}; choose from {MODES}")
        if isinstance(half, str) and half.lower() not in HALF_TYPES:
            raise ValueError(f"unknown half type {half!r}; choose from {sorted(HALF_TYPES)}")
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if mode == "cudagraphs" and self.device.type != "cuda":
            raise ValueError(f"cudagraphs mode needs a CUDA device, not {self.device} "
                             "(use mode='eager' or 'compile' on the CPU)")
        self.mode, self.half, self.channels_last = mode, half, channels_last
        self.amp_dtype: torch.dtype | None = None
        if isinstance(half, str):
            self.amp_dtype = HALF_TYPES[half.lower()]
        elif half:
            self.amp_dtype = torch.float16 if self.device.type == "cuda" else torch.bfloat16
        if self.device.type == "cuda" and cudnn_benchmark:
            torch.backends.cudnn.benchmark = True
        self.model = model.export_form().to(self.device)
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.input_names = tuple(model.input_names)
        self._fn: Callable[..., torch.Tensor] = self._forward
        if mode == "compile":
            if compile_mode is None and self.device.type == "cuda":
                compile_mode = "max-autotune-no-cudagraphs"
            self._fn = torch.compile(self._forward, mode=compile_mode)
        self.max_graphs = max_graphs
        self._graphs: dict[tuple, list[_CapturedGraph]] = {}

    # ------------------------------------------------------------------------ running
    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _forward(self, *inputs: torch.Tensor | None) -> torch.Tensor:
        with self._autocast():
            out = self.model(*inputs)
        return out.float() if out.is_floating_point() else out

    def _move(self, t: Any) -> torch.Tensor | None:
        if t is None:
            return None
        t = torch.as_tensor(t)
        if self.device.type == "cuda" and t.device.type == "cpu":
            t = t.pin_memory()
        t = t.to(self.device, non_blocking=True)
        if self.channels_last and t.dim() == 4:
            t = t.contiguous(memory_format=torch.channels_last)
        return t

    def _replay(self, inputs: list[torch.Tensor | None]) -> torch.Tensor:
        key = tuple(None if t is None else (tuple(t.shape[1:]), t.dtype) for t in inputs)
        batch = next(t.shape[0] for t in inputs if t is not None)
        graphs = self._graphs.setdefault(key, [])
        fitting = [g for g in graphs if g.batch >= batch]
        if not fitting:
            if sum(len(v) for v in self._graphs.values()) >= self.max_graphs:
                raise RuntimeError(f"more than {self.max_graphs} input shapes captured as CUDA "
                                   "graphs; use fixed batch/resolution or a larger max_graphs")
            graphs.append(_CapturedGraph(self._forward, inputs))
            graphs.sort(key=lambda g: g.batch)
            fitting = [g for g in graphs if g.batch >= batch]
        return fitting[0](inputs)

    @torch.inference_mode()
    def __call__(self, labels: torch.Tensor, edges: torch.Tensor | None,
                 noise: torch.Tensor | None, **extra: torch.Tensor) -> torch.Tensor:
        """Generate ``[B,3,H,W]`` float32 images in [-1, 1] (on the engine's device).

        On CUDA, host tensors are pinned so the copies overlap with other work.
        """
        if not self.model.uses_edges:
            edges = None
        feeds = {"labels": labels, "edges": edges, "noise": noise, **extra}
        inputs = [self._move(feeds.get(n)) for n in self.input_names]
        if self.mode == "cudagraphs":
            return self._replay(inputs)
        return self._fn(*inputs)
