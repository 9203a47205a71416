"""Converters from the official released checkpoints into sisgen models.

``convert(arch, ckpt, dataset=...)`` reads an official generator file (SPADE/CLADE
``latest_net_G.pth``/``best_net_G.pth``, OASIS ``best_EMA.pth``, pix2pixHD
``latest_net_G.pth``) with ``torch.load(weights_only=True)`` -- a file that needs pickle code
to load is refused -- and returns the equivalent sisgen generator. Each architecture's
key-layout mapping lives in its own module and registers itself in :data:`CONVERTERS`.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from sisgen.errors import SisgenInputError
from sisgen.models.base import SISGenerator
from sisgen.registry import Registry

#: Converter functions by architecture name: ``fn(state_dict, dataset, **options) -> model``.
CONVERTERS: Registry[Callable[..., SISGenerator]] = Registry("converter")

_MODULES = ("spade", "clade", "oasis", "pix2pixhd")


def register_converter(name: str) -> Callable[[Callable[..., SISGenerator]],
                                               Callable[..., SISGenerator]]:
    """Decorator: register ``fn(state_dict, dataset, **options)`` under ``name``.

    Raises:
        ValueError: ``name`` already has a converter.
    """
    return CONVERTERS.register(name)


def _import_all() -> None:
    for mod in _MODULES:
        try:
            importlib.import_module(f"{__name__}.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"{__name__}.{mod}":
                raise


def available_converters() -> list[str]:
    """Names accepted by :func:`convert`."""
    _import_all()
    return CONVERTERS.names()


def load_official_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an official checkpoint's tensors without running pickle code.

    Accepts a bare state dict or one nested under ``state_dict`` / ``model`` / ``netG``;
    strips a DataParallel ``module.`` prefix.

    Raises:
        SisgenInputError: Missing file, a file that needs pickle code, or no tensors inside.
    """
    path = Path(path)
    if not path.is_file():
        raise SisgenInputError("checkpoint file not found", path)
    try:
        obj: Any = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # UnpicklingError and friends
        raise SisgenInputError(
            "cannot load this checkpoint with torch.load(weights_only=True): it needs pickle "
            f"code to load, which sisgen refuses to run ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''})", path) from e
    for key in ("state_dict", "model", "netG", "G"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not any(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SisgenInputError("no state dict of tensors in the checkpoint", path)
    out = {}
    for k, v in obj.items():
        if isinstance(v, torch.Tensor):
            out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def convert(arch: str, ckpt: str | os.PathLike | dict[str, torch.Tensor], dataset: str,
            **options: Any) -> SISGenerator:
    """Convert an official checkpoint of ``arch`` for ``dataset`` into a sisgen model.

    Args:
        arch: ``spade``, ``clade``, ``oasis`` or ``pix2pixhd`` (see
            :func:`available_converters`).
        ckpt: The checkpoint file, or an already loaded state dict.
        dataset: ``cityscapes``, ``ade20k`` or ``coco_stuff`` (the official release's data).
        **options: Architecture-specific options (see each converter).

    Raises:
        SisgenInputError: Unknown architecture, unreadable file, or keys/shapes that do not
            match the official layout (naming the file and the first offending key).
    """
    _import_all()
    converter = CONVERTERS.get(arch)
    state = ckpt if isinstance(ckpt, dict) else load_official_state_dict(ckpt)
    try:
        return converter(state, dataset, **options)
    except SisgenInputError as e:
        if isinstance(ckpt, dict) or e.path is not None:
            raise
        raise SisgenInputError(e.problem, ckpt) from e
