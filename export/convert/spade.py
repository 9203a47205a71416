"""SPADE official generator files (``latest_net_G.pth``) -> ``spade`` models.

The official ``SPADEGenerator`` (NVlabs/SPADE) and sisgen's
:class:`~sisgen.models.spade.SPADEGenerator` share every module name: ``fc``, the trunk
``head_0``, ``G_middle_0``, ``G_middle_1``, ``up_0``..``up_3`` (``up_4`` with ``most``)
whose blocks hold ``conv_0``/``conv_1``/``conv_s`` and SPADE norms ``norm_0``/``norm_1``/
``norm_s`` (``param_free_norm``, ``mlp_shared.0``, ``mlp_gamma``, ``mlp_beta``), and
``conv_img``. Only the spectral-norm tensors are spelled differently: the hook's
``weight_orig``/``weight_u``/``weight_v`` become the parametrization's ``original``/``_u``/
``_v``. Both compute ``W / (u . W v)`` from the *stored* vectors in eval mode, so the
converted model's eval output is the official eval output (the vectors are copied, not
folded, and the model stays trainable). Files written by torch 1.0 store the folded
``weight`` instead of ``weight_v``; :func:`upgrade_legacy_spectral_norm` derives a ``v``
that reproduces that weight exactly.

Label channels (official ``preprocess_input``: one-hot of ``label_nc`` (+1 dontcare, last)
channels, then the instance-edge channel), per official dataset option file:

* ``cityscapes``: ``label_nc=35``, no dontcare, edges -> 35 + 1 channels; sisgen's
  Cityscapes SPADE has 35 classes, so ids map to channels unchanged. ``crop_size=512``,
  ``aspect_ratio=2``, ``num_upsampling_layers=more`` (256x512 output, 4x8 latent).
* ``ade20k``: ``label_nc=150`` + dontcare, no edges -> 151 channels. The dataset's
  ``postprocess`` (``label - 1``, ``-1 -> label_nc``) rebinds a local name and never writes
  the result back, so the official one-hot channel ``i`` is ADE20K id ``i`` (0 = "other")
  -- exactly sisgen's 151-class ADE20K layout; no permutation is needed. (ADE20K maps have
  no ignore pixels; a 255 gives sisgen an all-zero one-hot, the official loader channel
  150.)
* ``coco_stuff``: ``label_nc=182`` + dontcare (255 -> channel 182), edges -> 184 channels;
  the same as sisgen's COCO-Stuff layout.

Any other sisgen dataset (``toycity``, ``tiny``) is read in sisgen's own label layout.

Configuration is read from the tensors: ``ngf`` (``conv_img``), ``up_4`` (``most``), the
SPADE hidden width and kernel (``mlp_shared``), spectral norm (``weight_orig``), the
param-free norm (batch statistics present: ``syncbatch``/``batch``, else ``instance``),
VAE mode (``fc`` a linear layer: ``z_dim`` from its input), and the instance-edge channel
(label channels beyond the dataset's one-hot). ``normal`` vs ``more`` upsampling cannot be
told from the weights (except with a VAE ``fc``); it defaults to the dataset's official
option and can be set with the option ``num_upsampling_layers``.

The VAE image encoder (``latest_net_E.pth``, only written by ``--use_vae`` runs; the
released pretrained models are deterministic and ship no encoder) converts with
:func:`convert_encoder` into :class:`sisgen.models.encoder.ConvEncoder`.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import torch

from sisgen.errors import SisgenInputError
from sisgen.models.encoder import ConvEncoder
from sisgen.models.registry import dataset_spec
from sisgen.models.spade import _OFFICIAL_NUM_CLASSES, _OFFICIAL_UPSAMPLING, SPADEGenerator

from . import load_official_state_dict, register_converter
from .common import (
    build_described,
    load_checked,
    regex_renamer,
    rename_keys,
    require,
    spectral_norm_key,
)

#: sisgen key -> official key, for naming missing keys in messages.
SPECTRAL_TO_OFFICIAL = [
    (r"\.parametrizations\.weight\.original$", ".weight_orig"),
    (r"\.parametrizations\.weight\.0\._u$", ".weight_u"),
    (r"\.parametrizations\.weight\.0\._v$", ".weight_v"),
]
_TO_OFFICIAL = regex_renamer(SPECTRAL_TO_OFFICIAL)


def upgrade_legacy_spectral_norm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Give spectral-norm tensors saved by torch 1.0 (no ``weight_v``) a ``weight_v``.

    torch 1.0 saved ``weight_orig``, ``weight_u`` and the folded ``weight = W / sigma`` of
    the last training step, and its eval forward used that ``weight`` directly. Here
    ``sigma = |W| / |weight|`` and ``v = W^T u * sigma / |W^T u|^2``, so that
    ``u . W v = sigma`` and eval mode computes the stored ``weight`` again. Newer files
    (with ``weight_v``) are returned unchanged.

    Args:
        state: An official state dict.

    Returns:
        A new dict with ``<m>.weight_v`` added and ``<m>.weight`` removed where needed.
    """
    out = dict(state)
    for key in state:
        if not key.endswith(".weight_orig"):
            continue
        prefix = key[: -len("_orig")]  # "<m>.weight"
        if prefix + "_v" in state or prefix not in state or prefix + "_u" not in state:
            continue
        w_orig, folded = state[key].double(), state[prefix].double()
        mat = w_orig.flatten(1)  # dim 0 is the output dim for conv and linear layers
        sigma = w_orig.norm() / folded.norm()
        wtu = mat.t().mv(state[prefix + "_u"].double())
        out[prefix + "_v"] = (wtu * (sigma / wtu.dot(wtu))).to(state[key].dtype)
        del out[prefix]
    return out


def infer_config(state: dict[str, torch.Tensor], dataset: str, cond: str,
                 options: dict[str, Any]) -> dict[str, Any]:
    """The ``spade``/``clade`` constructor arguments that match an official state dict.

    Args:
        state: The official generator state dict (spectral norm already upgraded).
        dataset: The dataset the checkpoint was trained on (fixes the label channels).
        cond: ``spade`` or ``clade`` (where the label channels are read from).
        options: The caller's options; ``height``, ``width`` and ``num_upsampling_layers``
            are used (and removed), the rest is left for the constructor.

    Raises:
        SisgenInputError: A required tensor is missing, or the label channels do not fit
            the dataset's official layout.
    """
    spec, vocab = dataset_spec(dataset)
    num_classes = max(vocab.num_classes, _OFFICIAL_NUM_CLASSES.get(spec.vocabulary, 0))
    labels = num_classes + int(spec.dontcare)
    conv_img = require(state, "conv_img.weight", ndim=4)
    fc = require(state, "fc.weight")
    most = any(k.startswith("up_4.") for k in state)
    ngf = conv_img.shape[1] * (2 if most else 1)
    config: dict[str, Any] = dict(
        ngf=ngf,
        spectral=any(k.endswith(".weight_orig") for k in state),
        norm="batch" if any(k.endswith("param_free_norm.running_mean") for k in state)
        else "instance",
        z_dim=fc.shape[1] if fc.dim() == 2 else 0,
        height=options.pop("height", spec.height),
        width=options.pop("width", spec.width),
        num_upsampling_layers=options.pop(
            "num_upsampling_layers",
            "most" if most else _OFFICIAL_UPSAMPLING.get(spec.vocabulary, "normal")),
    )
    if cond == "spade":
        key = "head_0.norm_0.mlp_shared.0.weight"
        shared = require(state, key, ndim=4)
        if shared.shape[-1] != 3:
            raise SisgenInputError(f"{key!r} has shape {tuple(shared.shape)}: a "
                                   f"{shared.shape[-1]}x{shared.shape[-1]} SPADE kernel; "
                                   "sisgen's SPADE generator has the official 3x3 only")
        config["spade_hidden"] = shared.shape[0]
        extra = shared.shape[1] - labels
        if extra not in (0, 1):
            raise SisgenInputError(
                f"{key!r} has shape {tuple(shared.shape)}: {shared.shape[1]} label channels, "
                f"but the official {dataset} layout has {labels} (+1 with the instance-edge "
                "channel) -- a checkpoint for another dataset?")
    else:
        key = "head_0.norm_0.class_specified_affine.weight"
        table = require(state, key, ndim=2)
        if table.shape[0] != labels:
            raise SisgenInputError(
                f"{key!r} has shape {tuple(table.shape)}: {table.shape[0]} class rows, but the "
                f"official {dataset} layout has {labels} (a checkpoint for another dataset?)")
        extra = int("head_0.norm_0.inst_conv.weight" in state)
    config["use_edges"] = bool(extra)
    return config


def convert_family(state: dict[str, torch.Tensor], dataset: str, name: str, cond: str,
                   options: dict[str, Any], to_sisgen: Callable[[str], str] | None = None,
                   to_official: Callable[[str], str] | None = None) -> SPADEGenerator:
    """Build the registered model ``name`` the state dict describes and load it.

    Args:
        state: The official state dict.
        dataset: The dataset it was trained on.
        name: ``spade``, ``clade`` or ``clade_icpe``.
        cond: ``spade`` or ``clade``.
        options: Converter options; leftovers go to the model constructor.
        to_sisgen: Extra official -> sisgen key renaming (before the spectral-norm one).
        to_official: Extra sisgen -> official renaming, for naming missing keys.

    Raises:
        SisgenInputError: Keys or shapes that do not match the official layout.
    """
    state = upgrade_legacy_spectral_norm(state)
    options = dict(options)
    config = infer_config(state, dataset, cond, options)
    config.update(options)
    model = build_described(name, dataset, config, name)
    renamers = ([to_sisgen] if to_sisgen else []) + [spectral_norm_key]
    renamed, origin = rename_keys(state, *renamers)

    def official(key: str) -> str:
        key = _TO_OFFICIAL(key)
        return to_official(key) if to_official else key

    label = {"spade": "SPADE", "clade": "CLADE", "clade_icpe": "CLADE-ICPE"}[name]
    return load_checked(model, renamed, label, origin, official)  # type: ignore[return-value]


@register_converter("spade")
def convert_spade(state: dict[str, torch.Tensor], dataset: str, **options: Any
                  ) -> SPADEGenerator:
    """Convert an official SPADE generator state dict into a ``spade`` model.

    Args:
        state: The official state dict (``latest_net_G.pth``'s content).
        dataset: ``cityscapes``, ``ade20k`` or ``coco_stuff`` (or any sisgen dataset the
            checkpoint was trained with, in sisgen's label layout).
        **options: ``height``/``width`` (default: the dataset's official crop),
            ``num_upsampling_layers`` (default: ``most`` when ``up_4`` exists, else the
            dataset's official option); anything else goes to the model constructor.

    Returns:
        The converted model in eval mode. A ``--use_vae`` checkpoint gives a model with
        ``z_dim > 0`` whose ``noise`` input is the ``z`` the official forward takes.

    Raises:
        SisgenInputError: Keys or shapes that do not match the official layout, naming the
            first offending key and both shapes.
    """
    return convert_family(state, dataset, "spade", "spade", options)


def convert_encoder(ckpt: str | os.PathLike | dict[str, torch.Tensor]) -> ConvEncoder:
    """Convert an official SPADE VAE encoder (``latest_net_E.pth``) into a ConvEncoder.

    The official ``ConvEncoder`` (``norm_E=spectralinstance``) is sisgen's: ``layerN`` =
    ``Sequential(conv without bias, InstanceNorm)``, input resized to 256x256, six layers
    (the official code only runs with ``crop_size >= 256``), ``fc_mu``/``fc_var``.

    Args:
        ckpt: The file or its state dict.

    Returns:
        The encoder in eval mode.

    Raises:
        SisgenInputError: Keys or shapes that do not match (naming the key), or a
            five-layer encoder.
    """
    state = ckpt if isinstance(ckpt, dict) else load_official_state_dict(ckpt)
    try:
        state = upgrade_legacy_spectral_norm(state)
        spectral = "layer1.0.weight_orig" in state
        first = require(state, "layer1.0.weight_orig" if spectral else "layer1.0.weight", 4)
        mu = require(state, "fc_mu.weight", ndim=2)
        if not any(k.startswith("layer6.") for k in state):
            raise SisgenInputError("no 'layer6': a five-layer encoder (crop_size < 256), "
                                   "which the official code cannot run either")
        model = ConvEncoder(ngf=first.shape[0], z_dim=mu.shape[0], spectral=spectral)
        renamed, origin = rename_keys(state, spectral_norm_key)
        return load_checked(model, renamed, "SPADE encoder", origin, _TO_OFFICIAL)
    except SisgenInputError as e:
        if isinstance(ckpt, dict) or e.path is not None:
            raise
        raise SisgenInputError(e.problem, ckpt) from e
