"""Export a trained :class:`SegNet` to ONNX or TorchScript with a JSON sidecar.

The model file maps float images ``[B,3,H,W]`` in ``[0, 1]`` to logits ``[B,C,H,W]``
(ONNX: input ``image``, output ``logits``, dynamic batch axis). Beside it,
``<file>.json`` (e.g. ``segmenter.onnx.json``, :func:`sisgen.segmenter.sidecar_path`)
describes it for :class:`sisgen.segmenter.Segmenter`, which reads it::

    {"format": "sisgen-segmenter", "version": 1,
     "vocabulary": <Vocabulary.to_dict()>,
     "class_ids": [class id of channel 0, 1, ...],
     "input_range": [0, 1], "mean": [0, 0, 0], "std": [1, 1, 1],
     "size": [H, W]}

``mean`` and ``std`` are 0 and 1 because :class:`SegNet` normalises inside its graph;
``size`` is the size the segmenter was trained at (other sizes run, at some cost in
accuracy). Both files are written atomically. ``check=True`` (the default) runs the
written file through :class:`sisgen.segmenter.Segmenter` on random images and compares
its logits with the torch network's.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sisgen.errors import SisgenInputError
from sisgen.io import write_json
from sisgen.onnx_export import quiet_onnx_export
from sisgen.segmenter import SEGMENTER_FORMAT, Segmenter, sidecar_path
from sisgen.vocab import Vocabulary, get_vocabulary

from .network import SegNet

__all__ = ["FORMATS", "check_export", "export_segmenter", "sidecar"]

#: Export formats and their usual suffixes.
FORMATS = {"onnx": ".onnx", "torchscript": ".pt"}
#: Largest batch the ONNX batch axis declares.
MAX_BATCH = 4096


def sidecar(net: SegNet, vocabulary: Vocabulary | str, size: tuple[int, int]) -> dict[str, Any]:
    """The sidecar of ``net`` (module docstring).

    Raises:
        SisgenInputError: A channel's class id is not in the vocabulary.
    """
    vocab = get_vocabulary(vocabulary)
    missing = [c for c in net.class_ids if c not in vocab]
    if missing:
        raise SisgenInputError(
            f"the segmenter's channels predict class ids {missing[:10]} that the vocabulary "
            f"{vocab.name!r} lacks (its ids: {vocab.ids[0]}..{vocab.ids[-1]}, {len(vocab)} "
            "classes)")
    return {"format": SEGMENTER_FORMAT, "version": 1, "vocabulary": vocab.to_dict(),
            "class_ids": [int(c) for c in net.class_ids], "input_range": [0.0, 1.0],
            "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0],
            "size": [int(size[0]), int(size[1])]}


def export_segmenter(net: SegNet, path: str | os.PathLike, *, vocabulary: Vocabulary | str,
                     size: tuple[int, int], format: str = "onnx",  # noqa: A002
                     check: bool = True) -> Path:
    """Write ``net`` as an ONNX or TorchScript file plus its sidecar ``<path>.json``.

    Args:
        net: The trained network (exported in eval mode; its mode is restored).
        path: The model file.
        vocabulary: The vocabulary of its classes (recorded in the sidecar).
        size: ``(H, W)`` it was trained at (the example input of the export).
        format: ``"onnx"`` or ``"torchscript"``.
        check: Compare the written file's logits with the network's (see
            :func:`check_export`).

    Returns:
        The model file's path.

    Raises:
        SisgenInputError: Unknown format, or classes outside the vocabulary.
        RuntimeError: The check found the file's logits differ from the network's.
    """
    if format not in FORMATS:
        raise SisgenInputError(f"unknown segmenter export format {format!r}; one of "
                               f"{', '.join(FORMATS)}")
    meta = sidecar(net, vocabulary, size)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(2, 3, int(size[0]), int(size[1]),
                         generator=torch.Generator().manual_seed(0))
    was_training = net.training
    net.eval()
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if format == "onnx":
            _export_onnx(net, example, tmp)
        else:
            torch.jit.save(torch.jit.script(net), str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
        net.train(was_training)
    write_json(sidecar_path(path), meta, indent=2)
    if check:
        diff = check_export(net, path, size)
        if not diff < 1e-3:
            raise RuntimeError(f"{path}: exported logits differ from the network's by up to "
                               f"{diff:.2e}")
    return path


def _export_onnx(net: SegNet, example: torch.Tensor, path: Path) -> None:
    """The dynamo exporter with a dynamic batch axis (quietly)."""
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    quiet_onnx_export(net, (example,), path, input_names=["image"], output_names=["logits"],
                      opset=18, dynamic_shapes=({0: batch},))


@torch.no_grad()
def check_export(net: SegNet, path: str | os.PathLike, size: tuple[int, int],
                 batch: int = 3, seed: int = 0) -> float:
    """Largest absolute logit difference between ``net`` and the file at ``path``.

    Random uint8 images of ``size`` go through :class:`sisgen.segmenter.Segmenter` (the
    file, set up from its sidecar alone) and through ``net``; ``batch`` differs from the
    export's example batch so the dynamic batch axis is exercised.
    """
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, int(size[0]), int(size[1]), 3), dtype=np.uint8)
    exported = Segmenter(path).logits(images)
    was_training = net.training
    net.eval()
    try:
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255.0)
        expected = net(x).numpy()
    finally:
        net.train(was_training)
    return float(np.abs(exported - expected).max())
