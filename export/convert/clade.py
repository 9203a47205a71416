"""CLADE official generator files (``best_net_G.pth``) -> ``clade`` / ``clade_icpe`` models.

The official CLADE (tzt101/CLADE) is the SPADE generator with ``--norm_mode clade``: each
norm is a ``SPADELight`` holding ``param_free_norm``, the per-class affine tables
``class_specified_affine.weight`` / ``.bias`` (``[label_nc (+1 dontcare), C]``, looked up
by the argmax of the one-hot map), with ICPE (``--add_dist``, the ``*_dist`` releases) also
``class_specified_affine.dist_conv_w`` / ``dist_conv_b`` (1x1 convs, 2 -> 1), and with
instance edges ``inst_conv`` (1x1, 1 -> 1, its output appended as one more channel, so the
block convs read ``C + 1`` channels). sisgen's :class:`~sisgen.models.layers.CLADE` keeps
the same tensors one level up (``norm_0.weight``, ``norm_0.dist_conv_w``, ...); everything
else -- trunk, spectral norm, label channels per dataset, upsampling -- is as for SPADE
(see :mod:`sisgen.export.convert.spade`). Pixels whose one-hot is all zero take table row
0 in both (the official argmax of zeros, sisgen's out-of-range index).

ICPE is detected from the ``dist_conv_w`` keys (or forced with the option ``icpe``). The
official network reads a precomputed intra-class position map (``input_dist``, from
``util/cal_dist_masks.py``: per 8-connected component of each class except id 0, offsets
from its centroid divided by the largest absolute offset, y then x); the converted model
computes its position map on the device inside ``forward`` (see the ``icpe`` argument of
:class:`~sisgen.models.spade.SPADEGenerator` for how its regions are chosen), so its output
equals the official one wherever the two maps agree. Given the same map the two networks
agree exactly (verified by feeding the map sisgen computes to the official network).
"""

from __future__ import annotations

from typing import Any

import torch

from sisgen.errors import SisgenInputError
from sisgen.models.spade import SPADEGenerator

from . import register_converter
from .common import regex_renamer
from .spade import convert_family

_TO_SISGEN = regex_renamer([(r"\.class_specified_affine\.", ".")])
_TO_OFFICIAL = regex_renamer([
    (r"(norm_[01s])\.(weight|bias|dist_conv_[wb]\.(?:weight|bias))$",
     r"\1.class_specified_affine.\2"),
])


@register_converter("clade")
def convert_clade(state: dict[str, torch.Tensor], dataset: str, icpe: bool | None = None,
                  **options: Any) -> SPADEGenerator:
    """Convert an official CLADE or CLADE-ICPE generator state dict.

    Args:
        state: The official state dict (``best_net_G.pth``'s content).
        dataset: ``cityscapes``, ``ade20k`` or ``coco_stuff`` (or any sisgen dataset the
            checkpoint was trained with, in sisgen's label layout).
        icpe: ``True`` for a CLADE-ICPE (``--add_dist``) file, ``False`` for plain CLADE;
            ``None`` (default) detects it from the ``dist_conv_w`` keys.
        **options: As for :func:`sisgen.export.convert.spade.convert_spade`
            (``height``, ``width``, ``num_upsampling_layers``, constructor overrides).

    Returns:
        A ``clade`` or ``clade_icpe`` model in eval mode.

    Raises:
        SisgenInputError: Keys or shapes that do not match the official layout, naming the
            first offending key and both shapes.
    """
    has_dist = any(".class_specified_affine.dist_conv_w." in k for k in state)
    if icpe is None:
        icpe = has_dist
    if not isinstance(icpe, bool):
        raise SisgenInputError(f"option icpe must be true or false, got {icpe!r}")
    if not any(".class_specified_affine." in k for k in state):
        raise SisgenInputError("no 'class_specified_affine' tables: not a CLADE generator "
                               "(a SPADE file? use the spade converter)")
    name = "clade_icpe" if icpe else "clade"
    return convert_family(state, dataset, name, "clade", options, _TO_SISGEN, _TO_OFFICIAL)
