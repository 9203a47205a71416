"""sisgen: semantic image synthesis as a synthetic-data plugin.

Label maps in (COCO, Cityscapes, folders, the built-in ToyCity), edited on the way, through a
SPADE-family generator or an exported engine, out as labeled datasets that segmentation
training reads directly.

Quick use::

    import sisgen
    gen = sisgen.load("runs/quickstart/model.onnx")        # or a model folder
    src = sisgen.sources.open("cityscapes", "data/cityscapes", split="val")
    images = gen.generate([src[0]], seeds=[0])               # list of H×W×3 uint8
"""

from __future__ import annotations

from . import sources
from ._version import __version__ as __version__
from .errors import SisgenInputError
from .labelmap import IGNORE_ID, LabelMap, instance_edges
from .vocab import ClassInfo, Vocabulary, available_vocabularies, get_vocabulary

__all__ = [
    "IGNORE_ID",
    "ClassInfo",
    "LabelMap",
    "SisgenInputError",
    "Vocabulary",
    "available_vocabularies",
    "get_vocabulary",
    "instance_edges",
    "load",
    "sources",
]


def load(path, **kwargs):
    """Open a trained or exported generator as a callable engine.

    Accepts a model folder (``config.json`` + ``model.safetensors``), a ``.safetensors``
    file with its ``config.json`` beside it, or an exported ``.onnx``, ``.engine``/``.plan``
    (TensorRT, with its ``.json`` sidecar) or ``.pt2`` (AOTInductor) file. Keyword arguments
    go to :func:`sisgen.engines.load_generator` (``device``, ``mode``, ``providers``, ...).

    Returns:
        A :class:`sisgen.engines.Generator`.
    """
    from .engines import load_generator

    return load_generator(path, **kwargs)
