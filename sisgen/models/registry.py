"""Named model configurations: ``@register_model`` and ``build_model(name, dataset=...)``.

A registered function builds one paper configuration for a dataset; keyword overrides
replace any constructor argument (``build_model("spade", dataset="toycity", ngf=16)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import SisgenInputError
from ..vocab import Vocabulary, get_vocabulary
from .base import SISGenerator

_MODELS: dict[str, Callable[..., SISGenerator]] = {}


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
}


def register_model(fn: Callable[..., SISGenerator]) -> Callable[..., SISGenerator]:
    """Register a configuration function under its own name."""
    if fn.__name__ in _MODELS:
        raise ValueError(f"model {fn.__name__!r} registered twice")
    _MODELS[fn.__name__] = fn
    return fn


def available_models() -> list[str]:
    """The registered model names."""
    return sorted(_MODELS)


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
    if name not in _MODELS:
        raise SisgenInputError(
            f"unknown model {name!r}; available: {', '.join(available_models())}"
        )
    spec, vocab = dataset_spec(dataset)
    model = _MODELS[name](spec=spec, vocab=vocab, **overrides)
    model.vocabulary = vocab
    model.model_name = name
    return model


def _spade_family(cond: str, spec: DatasetSpec, vocab: Vocabulary, **overrides: Any
                  ) -> SISGenerator:
    from .spade import SPADEGenerator

    args: dict[str, Any] = dict(
        num_classes=vocab.num_classes, height=spec.height, width=spec.width, ngf=64,
        z_dim=256, use_edges=spec.use_edges, dontcare=spec.dontcare, cond=cond, norm="batch",
        spectral=True,
    )
    args.update(overrides)
    return SPADEGenerator(**args)


@register_model
def spade(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SISGenerator:
    """SPADE / GauGAN (Park et al., CVPR 2019), multi-modal (z) form."""
    return _spade_family("spade", spec, vocab, **overrides)


@register_model
def clade(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SISGenerator:
    """CLADE (Tan et al., TPAMI 2021): SPADE with class-adaptive normalization."""
    return _spade_family("clade", spec, vocab, **overrides)
