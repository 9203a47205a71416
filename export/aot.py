"""Ahead-of-time compiled torch packages (AOTInductor ``.pt2``).

``torch.export.export`` traces the model's export form with a dynamic batch axis, then
``torch._inductor.aoti_compile_and_package`` compiles it into a ``.pt2`` package: a shared
library of generated kernels plus the weights, loadable without Python model code and
without compiling anything at load time (``torch._inductor.aoti_load_package``; C++ can load
it with ``AOTIModelPackageLoader``). The package is specific to its device type (CPU or
CUDA, and on CUDA to the GPU architecture it was built on).

The ``sisgen.*`` metadata (the same keys an ONNX export carries, see
:mod:`sisgen.export.onnx`, plus ``sisgen.inputs``) is embedded in the package through
Inductor's ``aot_inductor.metadata`` and read back with the loaded model's
``get_metadata()``, so ``sisgen.load("model.pt2")`` needs nothing else.

On a CPU machine compiling a tiny SPADE takes about a minute (2 shared cores); real models
take several minutes. A C++ compiler is needed.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from pathlib import Path

import torch

from sisgen.models.base import SISGenerator

from .onnx import _ExportWrapper, export_metadata, used_inputs


def export_aot(model: SISGenerator, file: str | os.PathLike, *, batch: int = 64,
               dynamic: bool = True, device: str | torch.device = "cpu",
               half: bool = False) -> Path:
    """Compile ``model`` ahead of time into an AOTInductor ``.pt2`` package.

    Args:
        model: The generator (its export form is compiled).
        file: Output path (``.pt2``).
        batch: Largest batch the package accepts (with ``dynamic``), or its one batch size.
        dynamic: Dynamic batch axis (``1..batch``); otherwise the batch is fixed to ``batch``.
        device: ``cpu`` or ``cuda``; the package runs only there.
        half: Compile the model under float16 autocast (CUDA only; the same mixed
            precision as ``TorchEngine(half=True)``); inputs and images stay float32.

    Returns:
        The written package.

    Raises:
        ValueError: ``batch < 1``, or ``half`` on the CPU.
    """
    if batch < 1:
        raise ValueError("batch must be >= 1")
    device = torch.device(device)
    if half and device.type != "cuda":
        raise ValueError("half-precision AOT packages need device='cuda'")
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    form = model.export_form().to(device)
    example = model.example_inputs(batch_size=min(2, batch) if dynamic else batch)
    names, args = used_inputs(model, example)
    args = [a.to(device) for a in args]
    wrapper = _HalfWrapper(form, names) if half else _ExportWrapper(form, names, False)
    wrapper = wrapper.eval()
    shapes = None
    if dynamic and batch > 1:
        dim = torch.export.Dim("batch", min=1, max=batch)
        shapes = (tuple({0: dim} for _ in args),)
    meta = export_metadata(model, half=half)  # the precision of the autocast compute
    meta["sisgen.inputs"] = json.dumps(names)
    meta["sisgen.aot"] = json.dumps({"device": device.type, "batch": batch, "dynamic": dynamic,
                                     "half": half, "torch": torch.__version__})
    tmp = file.with_name(f".{file.name}.tmp.pt2")
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        quiet = logging.getLogger("torch._inductor")
        level = quiet.level
        quiet.setLevel(logging.ERROR)
        try:
            with torch.no_grad():
                program = torch.export.export(wrapper, tuple(args), dynamic_shapes=shapes)
                torch._inductor.aoti_compile_and_package(
                    program, package_path=str(tmp),
                    inductor_configs={"aot_inductor.metadata": meta})
        finally:
            quiet.setLevel(level)
    os.replace(tmp, file)
    return file


class _HalfWrapper(_ExportWrapper):
    """Runs the model under float16 autocast (norm statistics stay float32); float32 out."""

    def __init__(self, model: SISGenerator, names: list[str]):
        super().__init__(model, names, False)

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cuda", dtype=torch.float16):
            out = super().forward(*inputs)
        return out.float()
