"""Helpers shared by the checkpoint converters: key renaming and checked loading.

The official implementations wrap convs in the pre-1.0 ``torch.nn.utils.spectral_norm``
hook, which stores ``<name>.weight_orig`` plus the power-iteration vectors
``<name>.weight_u`` / ``<name>.weight_v``; sisgen uses the parametrization API, whose state
dict spells the same three tensors ``<name>.parametrizations.weight.original`` /
``.0._u`` / ``.0._v``. Both compute ``W / (u . W v)`` from the stored vectors in eval
mode, so renaming is all a conversion needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from sisgen.errors import SisgenInputError
from sisgen.models import build_model

#: Old spectral-norm suffixes -> parametrization suffixes.
_SN_SUFFIXES = {
    "weight_orig": "parametrizations.weight.original",
    "weight_u": "parametrizations.weight.0._u",
    "weight_v": "parametrizations.weight.0._v",
}

#: Regex rules mapping a sisgen spectral-norm key back to the official one (for messages).
SPECTRAL_TO_OFFICIAL = [
    (r"\.parametrizations\.weight\.original$", ".weight_orig"),
    (r"\.parametrizations\.weight\.0\._u$", ".weight_u"),
    (r"\.parametrizations\.weight\.0\._v$", ".weight_v"),
]

#: Buffers the official files may lack (older torch did not save them); the model keeps
#: its own value then.
OPTIONAL_SUFFIXES = ("num_batches_tracked",)


def spectral_norm_key(key: str) -> str:
    """``x.weight_orig/_u/_v`` (hook spectral norm) -> the parametrization's key."""
    prefix, _, leaf = key.rpartition(".")
    if leaf not in _SN_SUFFIXES:
        return key
    return f"{prefix}.{_SN_SUFFIXES[leaf]}" if prefix else _SN_SUFFIXES[leaf]


def regex_renamer(rules: Iterable[tuple[str, str]]) -> Callable[[str], str]:
    """A key renamer applying regex substitutions ``(pattern, replacement)`` in order."""
    compiled = [(re.compile(p), r) for p, r in rules]

    def rename(key: str) -> str:
        for pattern, repl in compiled:
            key = pattern.sub(repl, key)
        return key

    return rename


def rename_keys(state: Mapping[str, torch.Tensor], *renamers: Callable[[str], str]
                ) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Apply the renamers to every key.

    Returns:
        The renamed state dict and, for messages, each new key's official name.
    """
    out: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        new = key
        for rename in renamers:
            new = rename(new)
        out[new], origin[new] = value, key
    return out, origin


def indices_under(state: Mapping[str, torch.Tensor], prefix: str) -> list[int]:
    """Sorted integer children ``i`` of ``prefix`` among the keys ``prefix.i.<...>``."""
    pat = re.compile(re.escape(prefix) + r"\.(\d+)\.")
    return sorted({int(m.group(1)) for k in state if (m := pat.match(k))})


def require(state: Mapping[str, torch.Tensor], key: str, ndim: int | None = None
            ) -> torch.Tensor:
    """``state[key]``, or a SisgenInputError saying the official layout needs it."""
    if key not in state:
        sample = ", ".join(sorted(state)[:4])
        raise SisgenInputError(f"key {key!r} of the official layout is missing (the file has "
                               f"{len(state)} tensors, starting {sample})")
    value = state[key]
    if ndim is not None and value.dim() != ndim:
        raise SisgenInputError(f"{key!r} has shape {tuple(value.shape)}; a {ndim}-D tensor "
                               "was expected")
    return value


def build_described(name: str, dataset: str, config: Mapping[str, object], source: str
                    ) -> nn.Module:
    """Build the registered model ``name`` from a configuration inferred from a checkpoint.

    Raises:
        SisgenInputError: The configuration does not describe a buildable model (the
            message names the checkpoint's layout and the configuration).
    """
    try:
        return build_model(name, dataset=dataset, **config)
    except SisgenInputError:
        raise
    except ValueError as e:
        raise SisgenInputError(f"cannot build the {source} model this checkpoint describes "
                               f"({dict(config)}): {e}") from e


def load_checked(model: nn.Module, state: Mapping[str, torch.Tensor], source: str,
                 origin: Mapping[str, str] | None = None,
                 official_name: Callable[[str], str] | None = None) -> nn.Module:
    """Load ``state`` into ``model`` after checking every key and shape.

    Floating tensors are cast to the model's dtype (the official files are fp32, some
    fine-tuned ones fp16). The model is put in eval mode: converted generators are used for
    inference, with the stored batch-norm statistics and spectral-norm vectors.

    Args:
        model: The sisgen model built from the inferred configuration.
        state: The renamed official state dict (sisgen key names).
        source: Which official layout it came from, for messages (``"OASIS"``).
        origin: The official name of each renamed key (from :func:`rename_keys`); messages
            name the key as the checkpoint spells it.
        official_name: Maps a sisgen key back to the official one, to name missing keys.

    Raises:
        SisgenInputError: An unexpected key, a missing key, or a shape mismatch -- naming
            the first offending key (in the official file's order) and both shapes.
    """
    origin = origin or {}
    own = model.state_dict()
    for key, value in state.items():
        name = origin.get(key, key)
        if key not in own:
            raise SisgenInputError(f"unexpected key {name!r} {tuple(value.shape)} for the "
                                   f"{source} layout this file was read as")
        if tuple(value.shape) != tuple(own[key].shape):
            raise SisgenInputError(
                f"shape mismatch at {name!r}: the checkpoint has {tuple(value.shape)}, the "
                f"{source} model built from its other tensors needs {tuple(own[key].shape)}")
    missing = [k for k in own if k not in state and not k.endswith(OPTIONAL_SUFFIXES)]
    if missing:
        name = official_name(missing[0]) if official_name else missing[0]
        raise SisgenInputError(f"key {name!r} {tuple(own[missing[0]].shape)} missing "
                               f"from the checkpoint ({len(missing)} missing in all) for the "
                               f"{source} layout")
    full = dict(own)
    for key, value in state.items():
        full[key] = value.to(own[key].dtype) if value.is_floating_point() else value
    model.load_state_dict(full, strict=True)
    return model.eval()
