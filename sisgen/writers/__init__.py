"""Dataset writers: ``get_writer(kind, root, vocabulary, **options)``.

Kinds: ``cityscapes`` (``leftImg8bit`` + ``gtFine`` label / instance / colour PNGs),
``coco`` (images, COCO-Stuff label PNGs, instances + stuff JSON, optionally panoptic),
``mmseg`` (``img_dir`` / ``ann_dir`` + a dataset config), ``yolo`` (Ultralytics YOLO-seg
polygons + ``data.yaml``), ``folder`` (the plain layout the ``folder`` source reads) and
``hf`` (a Hugging Face ``datasets`` dataset; needs ``datasets``). Use a writer as a context
manager, or call :meth:`Writer.close` at the end::

    with get_writer("coco", "out/coco", vocab, split="val2017") as w:
        paths = w.write(labelmap.id, image, labelmap)
"""

from __future__ import annotations

import os
from typing import Any

from ..vocab import Vocabulary, get_vocabulary
from . import cityscapes, coco, folder, hf, mmseg, yolo  # noqa: F401  (registration)
from .base import WRITERS, Writer, register_writer, safe_stem
from .cityscapes import CityscapesWriter
from .coco import CocoWriter
from .folder import FolderWriter
from .hf import HFWriter
from .mmseg import MMSegWriter
from .yolo import YoloWriter

__all__ = [
    "CityscapesWriter",
    "CocoWriter",
    "FolderWriter",
    "HFWriter",
    "MMSegWriter",
    "Writer",
    "YoloWriter",
    "available_writers",
    "get_writer",
    "register_writer",
    "safe_stem",
]


def available_writers() -> list[str]:
    """Return the registered writer kinds."""
    return WRITERS.names()


def get_writer(
    kind: str, root: str | os.PathLike, vocabulary: Vocabulary | str, **options: Any
) -> Writer:
    """Open a dataset writer.

    Args:
        kind: One of :func:`available_writers`.
        root: The output folder.
        vocabulary: A :class:`~sisgen.vocab.Vocabulary` or a preset name / file.
        **options: Kind-specific options (see each writer class).

    Returns:
        A :class:`Writer`.

    Raises:
        SisgenInputError: Unknown kind or option.

    """
    return WRITERS.get(kind)(root, get_vocabulary(vocabulary), **options)
