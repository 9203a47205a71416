"""Generators: one architecture per file, shared layers, a registry of named configs.

Every module of this package is imported here, so an architecture file registers its
configurations (``@register_model``) just by existing.
"""

import importlib
import pkgutil

from .base import SISGenerator, load_model, register_architecture
from .registry import (
    DATASETS,
    REFERENCE,
    available_models,
    build_model,
    register_model,
    tiny_vocabulary,
)
from .spade import SPADEGenerator

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")

__all__ = [
    "DATASETS",
    "REFERENCE",
    "SISGenerator",
    "SPADEGenerator",
    "available_models",
    "build_model",
    "load_model",
    "register_architecture",
    "register_model",
    "tiny_vocabulary",
]
