"""Label-map sources: ``sisgen.sources.open(kind, root, split=...)``.

Kinds: ``cityscapes`` (gtFine labelIds + instanceIds), ``coco`` (COCO instances + stuff JSON
through pycocotools), ``coco_stuff`` (stuffthingmaps PNGs), ``folder`` (PNG label maps with
optional instance PNGs) and ``toycity`` (the built-in procedural dataset).
"""

from __future__ import annotations

import os
from typing import Any

from . import cityscapes, coco, coco_stuff, folder, toycity  # noqa: F401  (registration)
from .base import _SOURCES, Source, register_source

__all__ = ["Source", "available_sources", "open", "register_source"]


def available_sources() -> list[str]:
    """The registered source kinds."""
    return sorted(_SOURCES)


def open(kind: str, root: str | os.PathLike | None = None, split: str = "train",
         **kwargs: Any) -> Source:  # noqa: A001  (the public name the docs promise)
    """Open a label-map source.

    Args:
        kind: One of :func:`available_sources`.
        root: The dataset root folder (ignored by ``toycity``).
        split: Dataset split, e.g. ``train`` / ``val`` (COCO: ``train2017`` / ``val2017``).
        **kwargs: Kind-specific options (see each source class).

    Returns:
        A :class:`Source`.
    """
    from ..errors import SisgenInputError

    if kind not in _SOURCES:
        raise SisgenInputError(
            f"unknown source kind {kind!r}; available: {', '.join(available_sources())}"
        )
    return _SOURCES[kind](root=root, split=split, **kwargs)
