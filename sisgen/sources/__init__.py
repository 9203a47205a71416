"""Label-map sources: ``sisgen.sources.open(kind, root, split=...)``.

Kinds: ``cityscapes`` (gtFine labelIds + instanceIds, or the polygon JSON files), ``coco``
(COCO instances + stuff JSON through pycocotools), ``coco_panoptic`` (COCO panoptic PNG +
JSON), ``coco_stuff`` (stuffthingmaps PNGs), ``ade20k`` (ADEChallengeData2016), ``folder``
(PNG label maps with optional instance PNGs) and ``toycity`` (the built-in procedural
dataset). Any of them can be opened through a vocabulary remap (``remap=``, see
:mod:`sisgen.remap`).
"""

from __future__ import annotations

import inspect
import os
from typing import Any

from ..errors import SisgenInputError
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
from .cached import CachedSource
from .remapped import RemappedSource

__all__ = ["CachedSource", "RemappedSource", "Source", "available_sources", "open",
           "register_source"]


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
    factory = SOURCES.get(kind)
    _check_options(kind, factory, kwargs)
    src = factory(root=root, split=split, **kwargs)
    if remap is None:
        return src
    return RemappedSource(src, remap)


def _check_options(kind: str, factory: Any, options: dict[str, Any]) -> None:
    """Refuse options the ``kind`` source does not take, naming them and the known ones."""
    params = inspect.signature(factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        return
    known = sorted(n for n, p in params.items()
                   if n not in ("self", "root", "split") and p.kind in (
                       inspect.Parameter.KEYWORD_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD))
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise SisgenInputError(
            f"the {kind} source takes no option(s) {', '.join(unknown)}; its options: "
            f"{', '.join(known) or 'none'}")
