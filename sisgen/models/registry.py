"""Named model configurations: ``@register_model`` and ``build_model(name, dataset=...)``.

A registered function builds one paper configuration for a dataset; keyword overrides
replace any constructor argument (``build_model("spade", dataset="toycity", ngf=16)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import SisgenInputError
from ..registry import Registry
from ..vocab import Vocabulary, get_vocabulary
from .base import SISGenerator

#: Configuration functions by name: ``fn(spec=..., vocab=..., **overrides) -> generator``.
_MODELS: Registry[Callable[..., SISGenerator]] = Registry("model")

#: Constructor overrides that shrink each registered configuration for ``dataset="tiny"``.
TINY_OVERRIDES: dict[str, dict[str, Any]] = {}


@dataclass(frozen=True)
class DatasetSpec:
    """What a dataset fixes for a model: vocabulary, resolution, label options."""

    vocabulary: str
    height: int
    width: int
    use_edges: bool
    dontcare: bool


DATASETS: dict[str, DatasetSpec] = {
    "cityscapes": DatasetSpec("cityscapes", 256, 512, use_edges=True, dontcare=False),
    "ade20k": DatasetSpec("ade20k", 256, 256, use_edges=False, dontcare=False),
    "coco_stuff": DatasetSpec("coco_stuff", 256, 256, use_edges=True, dontcare=True),
    "toycity": DatasetSpec("toycity", 128, 256, use_edges=True, dontcare=False),
    # tests: a handful of classes at 64x64 (configurations shrink their widths for it)
    "tiny": DatasetSpec("tiny", 64, 64, use_edges=True, dontcare=False),
}


def tiny_vocabulary() -> Vocabulary:
    """Five classes (two things) for tiny test configurations."""
    from ..vocab import ClassInfo

    names = [("sky", False), ("road", False), ("tree", False), ("car", True), ("person", True)]
    return Vocabulary("tiny", [ClassInfo(i, n, ((50 * i) % 256, 80, 200 - 30 * i), t)
                               for i, (n, t) in enumerate(names)])


#: Official sizes per registered model and dataset: ``(parameters, MACs at batch 1)`` of
#: the generator's training form, as the official implementations count them.
REFERENCE: dict[str, dict[str, tuple[float, float]]] = {}


def register_model(fn: Callable[..., SISGenerator] | None = None, *,
                   reference: dict[str, tuple[float, float]] | None = None,
                   tiny: dict[str, Any] | None = None) -> Any:
    """Register a configuration function under its own name.

    Use as ``@register_model`` or ``@register_model(reference=..., tiny=...)``:
    ``reference`` records the official parameter count and multiply-accumulates per dataset
    (``{"cityscapes": (93.05e6, 281.3e9)}``), which ``benchmarks/model_zoo.py`` compares
    against; ``tiny`` are the overrides that shrink the configuration for ``dataset="tiny"``
    (a few channels, 64x64, five classes), used by the tests.
    """

    def deco(f: Callable[..., SISGenerator]) -> Callable[..., SISGenerator]:
        _MODELS.add(f.__name__, f)  # ValueError if the name is taken
        if reference:
            REFERENCE[f.__name__] = dict(reference)
        if tiny:
            TINY_OVERRIDES[f.__name__] = dict(tiny)
        return f

    return deco(fn) if fn is not None else deco


def available_models() -> list[str]:
    """The registered model names."""
    return _MODELS.names()


def dataset_spec(dataset: str | Vocabulary) -> tuple[DatasetSpec, Vocabulary]:
    """Resolve a dataset name (or a custom vocabulary) to its spec and vocabulary."""
    if isinstance(dataset, Vocabulary):
        return DatasetSpec(dataset.name, 256, 256, True, False), dataset
    if dataset not in DATASETS:
        raise SisgenInputError(
            f"unknown dataset {dataset!r}; known: {', '.join(sorted(DATASETS))} (or pass a "
            "Vocabulary)"
        )
    spec = DATASETS[dataset]
    if dataset == "tiny":
        return spec, tiny_vocabulary()
    return spec, get_vocabulary(spec.vocabulary)


def build_model(name: str, dataset: str | Vocabulary = "cityscapes", **overrides: Any
                ) -> SISGenerator:
    """Build a registered configuration.

    Args:
        name: A name from :func:`available_models`.
        dataset: ``cityscapes``, ``ade20k``, ``coco_stuff``, ``toycity`` or a Vocabulary.
        **overrides: Constructor arguments replacing the configuration's.

    Raises:
        SisgenInputError: Unknown name (listing the known ones) or dataset.
    """
    factory = _MODELS.get(name)
    spec, vocab = dataset_spec(dataset)
    if spec.vocabulary == "tiny":
        overrides = {**TINY_OVERRIDES.get(name, {}), **overrides}
    model = factory(spec=spec, vocab=vocab, **overrides)
    model.vocabulary = vocab
    model.model_name = name
    return model
