"""The dynamo ONNX exporter, run quietly: shared by model export and the segmenter's export.

``torch.onnx.export(dynamo=True)`` logs and prints a report of every step (absent
torchvision ops, decompositions, the optimizer); sisgen's exports check their own results
(parity against the module), so that chatter is silenced.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Sequence
from typing import Any

import torch


def quiet_onnx_export(module: torch.nn.Module, args: Sequence[torch.Tensor],
                      path: str | os.PathLike, *, input_names: list[str],
                      output_names: list[str], opset: int, dynamic_shapes: Any,
                      optimize: bool = True) -> None:
    """Export ``module`` at ``args`` to ``path`` with the dynamo exporter, weights inline.

    Args:
        module: The module to trace.
        args: Example inputs, in the order of ``forward``.
        path: The ``.onnx`` file to write.
        input_names: Graph input names, one per argument.
        output_names: Graph output names.
        opset: ONNX opset version.
        dynamic_shapes: ``torch.export`` dynamic shapes of the arguments.
        optimize: Run the exporter's graph optimizer.
    """
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(module, tuple(args), os.fspath(path), input_names=input_names,
                              output_names=output_names, opset_version=opset, dynamo=True,
                              external_data=False, dynamic_shapes=dynamic_shapes,
                              verbose=False, optimize=optimize)
    finally:
        logger.setLevel(level)
