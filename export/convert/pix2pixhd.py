"""pix2pixHD official generator files (``latest_net_G.pth``) -> ``pix2pixhd`` models.

sisgen's :class:`~sisgen.models.pix2pixhd.Pix2PixHDGenerator` keeps the official module
names, so the keys map one to one; the work is reading the configuration back from them:

* ``--netG global``: a single ``model.<i>`` sequence. ``--netG local``: the global part
  (its output head dropped) under ``model.`` plus ``model<n>_1`` (downsampling) and
  ``model<n>_2`` (residual blocks, upsampling; the last one with the output head) for each
  enhancer ``n``. The number of enhancers, ``ngf`` (the outermost level's width),
  ``n_downsample_global``, ``n_blocks_global``, ``n_blocks_local``, the norm (instance:
  no tensors; batch: affine + statistics) and the residual padding (``reflect``: convs at
  ``conv_block.1``/``.5``; ``zero``: ``.0``/``.3``) all follow from the keys and shapes.
* The input channels are ``label_nc`` one-hot channels, then the instance-edge channel
  (unless ``--no_instance``), then ``feat_num`` instance-feature channels (``--instance_feat``
  / ``--label_feat``). ``label_nc`` is the dataset's official count (Cityscapes: 35 label
  ids, of which 0..33 occur); the edge channel follows the dataset's default (Cityscapes:
  on), and whatever channels are left are ``feat_num``. The official edge map marks a
  pixel whose 4-neighbour has another instance id, as sisgen's ``instance_edges`` does.

No spectral norm, no noise: the generator is deterministic. The instance-feature encoder
``netE`` (``latest_net_E.pth``, needed to encode photos into ``features``) converts with
:func:`convert_feature_encoder`.
"""

from __future__ import annotations

import os
import re
from typing import Any

import torch

from sisgen.errors import SisgenInputError
from sisgen.models.base import SISGenerator
from sisgen.models.pix2pixhd import _OFFICIAL_LABEL_NC
from sisgen.models.pix2pixhd_encoder import Pix2PixHDEncoder
from sisgen.models.registry import dataset_spec

from . import load_official_state_dict, register_converter
from .common import build_described, indices_under, load_checked, require

#: Resolution of the official Cityscapes releases per number of local enhancers:
#: ``label2city_512p`` (global) and ``label2city_1024p`` (one enhancer).
OFFICIAL_SIZES = {("cityscapes", 0): (512, 1024), ("cityscapes", 1): (1024, 2048)}


def _local_enhancers(state: dict[str, torch.Tensor]) -> int:
    """The number of ``model<n>_1`` / ``model<n>_2`` enhancer pairs (0: global only)."""
    found = {int(m.group(1)) for k in state if (m := re.match(r"model(\d+)_[12]\.", k))}
    n = max(found, default=0)
    if found != set(range(1, n + 1)):
        raise SisgenInputError(f"local enhancers {sorted(found)} are not numbered 1..{n}")
    return n


def _resnet_indices(state: dict[str, torch.Tensor], prefix: str) -> list[int]:
    """Entries of the sequence ``prefix`` that are residual blocks."""
    return sorted({int(m.group(1)) for k in state
                   if (m := re.match(re.escape(prefix) + r"\.(\d+)\.conv_block\.", k))})


def _padding_type(state: dict[str, torch.Tensor], block: str) -> str:
    """``reflect`` when the block's convs sit behind padding modules, ``zero`` otherwise."""
    if f"{block}.conv_block.1.weight" in state:
        return "reflect"
    if f"{block}.conv_block.0.weight" in state:
        return "zero"
    raise SisgenInputError(f"no conv found in residual block {block!r}")


def infer_config(state: dict[str, torch.Tensor], dataset: str) -> dict[str, Any]:
    """The ``pix2pixhd`` constructor arguments that match an official state dict.

    Input channels are left to :func:`input_channels`; this reads the architecture.

    Raises:
        SisgenInputError: A tensor the official layout always has is missing.
    """
    n_local = _local_enhancers(state)
    first = require(state, "model.1.weight", ndim=4)  # the global generator's 7x7 conv
    blocks = _resnet_indices(state, "model")
    if not blocks:
        raise SisgenInputError("no residual blocks ('model.<i>.conv_block.*') in the "
                               "checkpoint: not a pix2pixHD generator")
    # before the first block: pad, conv, norm, relu, then (conv, norm, relu) per downsample
    convs = [i for i in indices_under(state, "model")
             if i < blocks[0] and state.get(f"model.{i}.weight", torch.empty(0)).dim() == 4]
    batch = "model.2.running_mean" in state or "model.2.weight" in state
    if n_local:
        outer = require(state, f"model{n_local}_1.1.weight", ndim=4)
        ngf = outer.shape[0]
        n_blocks_local = len(_resnet_indices(state, "model1_2"))
    else:
        ngf, n_blocks_local = first.shape[0], 3
    spec, _ = dataset_spec(dataset)
    height, width = OFFICIAL_SIZES.get((spec.vocabulary, n_local), (spec.height, spec.width))
    return dict(
        height=height, width=width, ngf=ngf, n_downsample_global=len(convs) - 1,
        n_blocks_global=len(blocks), n_local_enhancers=n_local, n_blocks_local=n_blocks_local,
        norm="batch" if batch else "instance",
        padding_type=_padding_type(state, f"model.{blocks[0]}"),
    )


def input_channels(state: dict[str, torch.Tensor], dataset: str, options: dict[str, Any]
                   ) -> dict[str, Any]:
    """Split the first conv's input channels into one-hot, edge and feature channels.

    Args:
        state: The official state dict.
        dataset: The dataset (its official ``label_nc`` and default edge use).
        options: The caller's ``label_nc`` / ``use_edges`` / ``feat_num`` / ``dontcare``,
            taking precedence over the dataset defaults; consumed from the dict.

    Raises:
        SisgenInputError: The channels do not add up.
    """
    input_nc = require(state, "model.1.weight", ndim=4).shape[1]
    spec, vocab = dataset_spec(dataset)
    dontcare = bool(options.pop("dontcare", spec.dontcare))
    label_nc = options.pop("label_nc", None)
    if label_nc is None:
        label_nc = _OFFICIAL_LABEL_NC.get(spec.vocabulary, vocab.num_classes + int(dontcare))
    use_edges = bool(options.pop("use_edges", spec.use_edges))
    feat_num = options.pop("feat_num", None)
    rest = input_nc - label_nc - int(use_edges)
    if rest < 0 or (feat_num is not None and feat_num != rest):
        given = "" if feat_num is None else f" (feat_num={feat_num} was given)"
        raise SisgenInputError(
            f"'model.1.weight' reads {input_nc} input channels, but the {dataset} layout has "
            f"label_nc={label_nc} one-hot channels + {int(use_edges)} edge channel, leaving "
            f"{rest} for instance features{given} -- a checkpoint for another dataset? "
            "(the options label_nc=, use_edges=, feat_num= describe other setups)")
    return dict(label_nc=label_nc, use_edges=use_edges, feat_num=rest, dontcare=dontcare)


@register_converter("pix2pixhd")
def convert_pix2pixhd(state: dict[str, torch.Tensor], dataset: str, **options: Any
                      ) -> SISGenerator:
    """Convert an official pix2pixHD ``netG`` state dict (global or local) into sisgen.

    The result is registered as ``pix2pixhd`` (global) or ``pix2pixhd_local``.

    Args:
        state: The official state dict (``latest_net_G.pth``'s content).
        dataset: ``cityscapes`` (the official release) or another sisgen dataset the
            checkpoint was trained on with sisgen's label layout.
        **options: ``height``/``width`` (default: the official Cityscapes release's size for
            the detected variant, else the dataset's), ``label_nc``, ``use_edges``,
            ``feat_num``, ``dontcare`` (the input layout), anything else for the constructor.

    Returns:
        The converted model in eval mode.

    Raises:
        SisgenInputError: Keys or shapes that do not match the official layout, naming the
            first offending key and both shapes.
    """
    options = dict(options)
    config = infer_config(state, dataset)
    config.update(input_channels(state, dataset, options))
    config.update(options)
    name = "pix2pixhd_local" if config["n_local_enhancers"] else "pix2pixhd"
    model = build_described(name, dataset, config, "pix2pixHD")
    return load_checked(model, state, "pix2pixHD")


def convert_feature_encoder(ckpt: str | os.PathLike | dict[str, torch.Tensor]
                            ) -> Pix2PixHDEncoder:
    """Convert an official pix2pixHD feature encoder (``latest_net_E.pth``).

    The official ``Encoder`` is sisgen's :class:`Pix2PixHDEncoder` key for key
    (``model.<i>``: a 7x7 conv, ``n_downsample_E`` stride-2 convs, as many transposed convs,
    a 7x7 conv with tanh); ``nef``, ``feat_num``, the number of downsamplings and the norm
    are read from the tensors. Its instance-wise averaging over the instance map is
    sisgen's average over ``regions``.

    Args:
        ckpt: The file or its state dict.

    Returns:
        The encoder in eval mode.

    Raises:
        SisgenInputError: Keys or shapes that do not match (naming the key).
    """
    state = ckpt if isinstance(ckpt, dict) else load_official_state_dict(ckpt)
    try:
        first = require(state, "model.1.weight", ndim=4)
        convs = [i for i in indices_under(state, "model")
                 if state.get(f"model.{i}.weight", torch.empty(0)).dim() == 4]
        if len(convs) < 2 or len(convs) % 2:
            raise SisgenInputError(f"{len(convs)} convs under 'model.': not a pix2pixHD "
                                   "encoder (7x7 conv, n down, n up, 7x7 conv)")
        last = state[f"model.{convs[-1]}.weight"]
        batch = "model.2.running_mean" in state
        model = Pix2PixHDEncoder(input_nc=first.shape[1], feat_num=last.shape[0],
                                 nef=first.shape[0], n_downsampling=(len(convs) - 2) // 2,
                                 norm="batch" if batch else "instance")
        return load_checked(model, state, "pix2pixHD encoder")  # type: ignore[return-value]
    except SisgenInputError as e:
        if isinstance(ckpt, dict) or e.path is not None:
            raise
        raise SisgenInputError(e.problem, ckpt) from e
