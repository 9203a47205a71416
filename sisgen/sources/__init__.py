"""Label-map sources: ``sisgen.sources.open(kind, root, split=...)``.

Kinds: ``cityscapes`` (gtFine labelIds + instanceIds, or the polygon JSON files), ``coco``
(COCO instances + stuff JSON through pycocotools), ``coco_panoptic`` (COCO panoptic PNG +
JSON), ``coco_stuff`` (stuffthingmaps PNGs), ``ade20k`` (ADEChallengeData2016), ``folder``
(PNG label maps with optional instance PNGs) and ``toycity`` (the built-in procedural
dataset). Any of them can be opened through a vocabulary remap (``remap=``, see
:mod:`sisgen.remap`).
"""

from __future__ import annotations

import os
from typing import Any

from . import (  # noqa: F401  (registration)
    ade20k,
    cityscapes,
    coco,
    coco_panoptic,
    coco_stuff,
    folder,
    toycity,
)
from .base import SOURCES, Source, register_source
from .remapped import RemappedSource

__all__ = ["RemappedSource", "Source", "available_sources", "open", "register_source"]


def available_sources() -> list[str]:
    """The registered source kinds."""
    return SOURCES.names()


def open(kind: str, root: str | os.PathLike | None = None, split: str = "train",
         *, remap: str | os.PathLike | Any | None = None,
         **kwargs: Any) -> Source:  # noqa: A001  (the public name the docs promise)
    """Open a label-map source.

    Args:
        kind: One of :func:`available_sources`.
        root: The dataset root folder (ignored by ``toycity``).
        split: Dataset split, e.g. ``train`` / ``val`` (COCO: ``train2017`` / ``val2017``).
        remap: A vocabulary remap applied to every map: a built-in name such as
            ``"coco_stuff->cityscapes"``, a YAML table file or a
            :class:`~sisgen.remap.Remap`. The source then reports the remap's target
            vocabulary (it is a :class:`~sisgen.remap.RemappedSource`).
        **kwargs: Kind-specific options (see each source class).

    Returns:
        A :class:`Source`.
    """
    src = SOURCES.get(kind)(root=root, split=split, **kwargs)
    if remap is None:
        return src
    return RemappedSource(src, remap)
