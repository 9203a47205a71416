"""Generators: one architecture per file, shared layers, a registry of named configs."""

from .base import SISGenerator, load_model, register_architecture
from .registry import DATASETS, available_models, build_model, register_model
from .spade import SPADEGenerator

__all__ = [
    "DATASETS",
    "SISGenerator",
    "SPADEGenerator",
    "available_models",
    "build_model",
    "load_model",
    "register_architecture",
    "register_model",
]
