"""ONNX export of sisgen generators, with embedded metadata and a parity check.

The exported graph is the model's *export form* (spectral norm folded with its stored
vectors, eval-mode norms, no randomness inside) with compact inputs:

* ``labels`` int64 ``[B,H,W]`` -- one-hot expansion happens inside the graph;
* ``edges`` float32 ``[B,1,H,W]`` -- only for models that use instance edges;
* ``noise`` float32 ``[B,*noise_shape]`` -- only for models that take noise;
* any further input a model declares in ``input_names`` (e.g. a photo and a mask);

and one output ``image``: float32 ``[B,3,H,W]`` in [-1, 1], or with ``uint8_output`` the
bytes ``[B,H,W,3]`` so that only uint8 pixels leave the device. The batch axis is dynamic.
Metadata keys (all strings, JSON where structured): ``sisgen.model_name``,
``sisgen.architecture``, ``sisgen.config``, ``sisgen.vocabulary``, ``sisgen.resolution``,
``sisgen.noise``, ``sisgen.model_hash``, ``sisgen.output``.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sisgen.models.base import SISGenerator

log = logging.getLogger(__name__)


class _ExportWrapper(nn.Module):
    """Fixes the input list to what the model uses and optionally emits uint8 NHWC."""

    def __init__(self, model: SISGenerator, names: list[str], uint8_output: bool):
        super().__init__()
        self.model = model
        self.names = names
        self.uint8_output = uint8_output

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        image = self.model(**dict(zip(self.names, inputs, strict=True)))
        if self.uint8_output:
            image = ((image + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8)
            image = image.permute(0, 2, 3, 1)
        return image


@dataclass
class ParityResult:
    """Difference between the exported engine and torch on the same inputs."""

    max_abs: float
    mean_abs: float
    batch: int

    def __str__(self) -> str:
        return (f"parity vs torch (batch {self.batch}): max abs diff {self.max_abs:.3e}, "
                f"mean abs diff {self.mean_abs:.3e}")


def used_inputs(model: SISGenerator, example: tuple) -> tuple[list[str], list[torch.Tensor]]:
    """The names and tensors of the inputs a model uses (those not ``None`` in ``example``)."""
    pairs = [(n, v) for n, v in zip(model.input_names, example, strict=True) if v is not None]
    return [n for n, _ in pairs], [v for _, v in pairs]


def export_onnx(
    model: SISGenerator,
    file: str | os.PathLike,
    *,
    opset: int = 18,
    uint8_output: bool = False,
    check: bool = True,
    check_batch: int = 2,
    optimize: bool = True,
) -> tuple[Path, ParityResult | None]:
    """Export ``model`` to ONNX.

    Args:
        model: The generator (training form is fine: the export form is derived here).
        file: Output ``.onnx`` path (written atomically).
        opset: ONNX opset (>= 17).
        uint8_output: Emit ``[B,H,W,3]`` uint8 instead of float images.
        check: Run the onnxruntime parity check against torch (float output only; for
            uint8 output the check compares bytes and reports the difference in [-1, 1]
            units).
        check_batch: Batch size of the parity check (different from the trace batch, so
            the dynamic batch axis is exercised too).
        optimize: Run the exporter's graph optimizer (constant folding, dead-code removal).
            onnxruntime optimizes again when it loads the file, so turning this off only
            makes a larger file; it saves most of the export time of large graphs.

    Returns:
        The written path and the parity result (``None`` when ``check`` is off).
    """
    import onnx

    if opset < 17:
        raise ValueError("opset must be >= 17")
    file = Path(file)
    file.parent.mkdir(parents=True, exist_ok=True)
    form = model.export_form().cpu()
    names, args = used_inputs(model, model.example_inputs(batch_size=1))
    wrapper = _ExportWrapper(form, names, uint8_output).eval()
    tmp = file.with_name(f".{file.name}.tmp")
    batch = torch.export.Dim("batch", min=1, max=4096)
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the exporter warns about absent torchvision ops
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, tuple(args), str(tmp), input_names=names,
            output_names=["generated" if "image" in names else "image"],
            opset_version=opset, dynamo=True, external_data=False,
            dynamic_shapes=(tuple({0: batch} for _ in args),), verbose=False,
            optimize=optimize,
        )
    quiet.setLevel(level)
    proto = onnx.load(str(tmp))
    meta = {
        "sisgen.model_name": model.model_name,
        "sisgen.architecture": type(model).__name__,
        "sisgen.config": json.dumps(model.config),
        "sisgen.vocabulary": json.dumps(model.vocabulary.to_dict()) if model.vocabulary else "",
        "sisgen.resolution": json.dumps(list(model.resolution)),
        "sisgen.noise": json.dumps(model.noise_spec()),
        "sisgen.model_hash": model.weights_hash(),
        "sisgen.output": "uint8_nhwc" if uint8_output else "float_nchw",
    }
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "sisgen"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(tmp))
    os.replace(tmp, file)
    parity = check_parity(model, file, batch=check_batch) if check else None
    return file, parity


def check_parity(model: SISGenerator, file: str | os.PathLike, batch: int = 2, seed: int = 123
                 ) -> ParityResult:
    """Compare onnxruntime (CPU) with torch on random blocky label maps.

    Returns:
        Max and mean absolute differences of the images in [-1, 1].
    """
    from sisgen.engines.onnx_engine import OnnxEngine

    example = model.example_inputs(batch_size=batch, seed=seed)
    form = model.export_form()  # outside inference mode: folding reads parametrizations
    with torch.inference_mode():
        ref = form(*example).numpy()
    names, args = used_inputs(model, example)
    out = OnnxEngine(file, providers=["CPUExecutionProvider"]).run(dict(zip(names, args,
                                                                            strict=True)))
    if out.dtype == np.uint8:
        out = out.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0
    diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
    return ParityResult(float(diff.max()), float(diff.mean()), batch)
