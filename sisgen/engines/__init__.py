"""Engines: one protocol, several backends (torch eager, onnxruntime)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import SisgenInputError
from .base import Engine, Generator, images_to_uint8, noise_from_seeds

__all__ = ["Engine", "Generator", "images_to_uint8", "load_generator", "noise_from_seeds"]


def load_generator(path: str | os.PathLike, device: str | None = None,
                   providers: list[str] | None = None, threads: int = 0) -> Generator:
    """Open a model folder / ``.safetensors`` (torch backend) or an ``.onnx`` file.

    Args:
        path: What to open.
        device: Torch device for the torch backend.
        providers: onnxruntime providers for ``.onnx`` files.
        threads: onnxruntime intra-op threads (0 = default).

    Raises:
        SisgenInputError: The path does not exist or is not a sisgen model.
    """
    path = Path(path)
    if not path.exists():
        raise SisgenInputError("no such model file or folder", path)
    if path.suffix == ".onnx":
        from ..vocab import Vocabulary
        from .onnx_engine import OnnxEngine

        eng = OnnxEngine(path, providers=providers, threads=threads)
        meta = eng.metadata
        if "sisgen.resolution" not in meta:
            raise SisgenInputError("ONNX file has no sisgen metadata (export it with "
                                   "`sisgen export onnx`)", path)
        vocab = meta.get("sisgen.vocabulary")
        return Generator(
            eng,
            Vocabulary.from_dict(json.loads(vocab), source=str(path)) if vocab else None,
            tuple(json.loads(meta["sisgen.resolution"])),
            json.loads(meta.get("sisgen.noise", "{}")),
            model_name=meta.get("sisgen.model_name", ""),
            model_hash=meta.get("sisgen.model_hash", ""),
            uses_edges="edges" in eng.input_names,
            backend="onnxruntime",
        )
    from ..models import load_model
    from .torch_engine import TorchEngine

    model = load_model(path)
    return Generator(TorchEngine(model, device), model.vocabulary, model.resolution,
                     model.noise_spec(), model.model_name, model.weights_hash(),
                     model.uses_edges, backend="torch")
