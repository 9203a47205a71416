"""OASIS official generator files (``best_EMA.pth`` / ``latest_G.pth``) -> ``oasis`` models.

The official ``OASIS_Generator`` and sisgen's :class:`~sisgen.models.oasis.OASISGenerator`
have the same modules (``fc``, ``body.<i>`` residual blocks with ``conv_0``/``conv_1``/
``conv_s`` and SPADE norms ``norm_0``/``norm_1``/``norm_s``, ``conv_img``). Two names
differ: the param-free norm inside SPADE (official ``first_norm``, a synchronized BN whose
running statistics become a plain BN's) and the spectral-norm tensors (the hook's
``weight_orig``/``weight_u``/``weight_v`` -> the parametrization's keys, same values;
files from torch 1.0, which stored the folded ``weight`` instead of ``weight_v``, are
upgraded first as for SPADE).

Inputs line up as follows (checked against the official forward):

* Labels: the official one-hot has ``semantic_nc`` channels (Cityscapes 35 = label ids
  0..33 plus one unused, ADE20K 151 = ids 0..150 with 0 = "other", COCO-Stuff 183 = ids
  shifted by one with channel 0 = unlabeled). sisgen's model builds the same map from
  compact labels; ignore pixels (255) take channel 0 as the official COCO-Stuff loader does.
* Noise: the official forward draws ``z ~ N(0, I)`` of shape ``[B, z_dim]`` *inside*
  ``forward`` (``torch.randn``), repeats it over every pixel and concatenates it *in front
  of* the one-hot map. sisgen takes the noise as an input ``[B, z_dim, H, W]``; feeding
  :func:`official_noise` of the same ``z`` reproduces the official output exactly, and any
  other spatial pattern is the "3D noise" the paper re-samples locally.

Configuration is read from the tensors: ``channels_G`` (``conv_img``), SPADE hidden width
and kernel (``mlp_shared``), number of blocks, spectral norm (``weight_orig`` present),
param-free norm (batch statistics present: ``syncbatch``/``batch``; none: ``instance``),
and the noise width (``fc`` input channels minus the dataset's ``semantic_nc``; 0 for a
``--no_3dnoise`` model).
"""

from __future__ import annotations

from typing import Any

import torch

from sisgen.errors import SisgenInputError
from sisgen.models.base import SISGenerator
from sisgen.models.oasis import _label_args
from sisgen.models.registry import dataset_spec

from . import register_converter
from .common import (
    SPECTRAL_TO_OFFICIAL,
    build_described,
    indices_under,
    load_checked,
    regex_renamer,
    rename_keys,
    require,
    spectral_norm_key,
)
from .spade import upgrade_legacy_spectral_norm

#: The official default ``--z_dim``.
OFFICIAL_Z_DIM = 64

_TO_SISGEN = regex_renamer([(r"\.first_norm\.", ".param_free_norm.")])
_TO_OFFICIAL = regex_renamer([(r"\.param_free_norm\.", ".first_norm."), *SPECTRAL_TO_OFFICIAL])


def official_noise(z: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The official OASIS noise map: one ``z`` per image repeated over every pixel.

    Args:
        z: ``[B, z_dim]`` standard-normal vectors (the official ``torch.randn`` draw).
        height: Label-map height.
        width: Label-map width.

    Returns:
        ``[B, z_dim, height, width]``, the ``noise`` input of a converted model.
    """
    if z.dim() != 2:
        raise ValueError(f"z must be [B, z_dim], got {tuple(z.shape)}")
    return z[:, :, None, None].expand(-1, -1, height, width).contiguous()


def infer_config(state: dict[str, torch.Tensor], dataset: str, z_dim: int | None = None
                 ) -> dict[str, Any]:
    """The ``oasis`` constructor overrides that match an official state dict.

    Args:
        state: The official generator state dict.
        dataset: The dataset the checkpoint was trained on (fixes ``semantic_nc``).
        z_dim: The noise width; ``None`` accepts the official default (64) or none.

    Raises:
        SisgenInputError: A required tensor is missing, or ``fc``'s input channels do not
            fit the dataset's label channels plus the noise.
    """
    conv_img = require(state, "conv_img.weight", ndim=4)
    fc = require(state, "fc.weight", ndim=4)
    hidden = require(state, "body.0.norm_0.mlp_shared.0.weight", ndim=4)
    spec, vocab = dataset_spec(dataset)
    semantic_nc = _label_args(spec, vocab)["semantic_nc"]
    noise_nc = fc.shape[1] - semantic_nc
    allowed = (0, OFFICIAL_Z_DIM) if z_dim is None else (z_dim,)
    if noise_nc not in allowed:
        raise SisgenInputError(
            f"'fc.weight' reads {fc.shape[1]} channels, but the official OASIS {dataset} "
            f"layout has semantic_nc={semantic_nc} label channels plus "
            f"{' or '.join(map(str, allowed))} noise channels -- a checkpoint for another "
            "dataset? (pass the option z_dim=K for a non-default noise width)")
    spectral = any(k.endswith(".weight_orig") for k in state)
    batch = any(k.endswith(".first_norm.running_mean") for k in state)
    return dict(
        height=spec.height, width=spec.width, ngf=conv_img.shape[1], z_dim=noise_nc,
        spade_hidden=hidden.shape[0], spade_ks=hidden.shape[-1], spectral=spectral,
        norm="batch" if batch else "instance", num_res_blocks=len(indices_under(state, "body")),
    )


@register_converter("oasis")
def convert_oasis(state: dict[str, torch.Tensor], dataset: str, **options: Any) -> SISGenerator:
    """Convert an official OASIS generator state dict (EMA or not) into an ``oasis`` model.

    Args:
        state: The official state dict (``best_EMA.pth``'s content).
        dataset: ``cityscapes``, ``ade20k`` or ``coco_stuff`` (or any sisgen dataset the
            checkpoint was trained with in the official label layout).
        **options: ``height``/``width`` (default: the dataset's official crop), ``z_dim``
            (a non-default ``--z_dim``); anything else is passed to the model constructor.

    Returns:
        The converted model in eval mode; its ``noise`` input is ``[B, z_dim, H, W]``
        (see :func:`official_noise` for the official sampling).

    Raises:
        SisgenInputError: Keys or shapes that do not match the official layout, naming the
            first offending key and both shapes.
    """
    config = infer_config(state, dataset, options.pop("z_dim", None))
    config.update(options)
    model = build_described("oasis", dataset, config, "OASIS")
    renamed, origin = rename_keys(upgrade_legacy_spectral_norm(state), _TO_SISGEN,
                                  spectral_norm_key)
    return load_checked(model, renamed, "OASIS", origin, _TO_OFFICIAL)
