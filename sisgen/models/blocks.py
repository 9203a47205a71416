"""Blocks built from the conditional norms: the dispatch, the SPADE residual block, the trunk.

:func:`conditional_norm` picks SPADE / CLADE(-ICPE) from :mod:`sisgen.models.layers` or a
variation-aware norm from :mod:`sisgen.models.vasis`; :class:`SPADEResBlock` is the
residual block of the SPADE family built from it; :func:`build_spade_trunk` /
:func:`run_spade_trunk` lay out and run SPADE's block stack, shared by SPADE / CLADE /
VASIS, LGGAN's global branch, SAFM, CC-FPSE and PosGen.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .layers import CLADE, SPADE, CondKind, NormKind, PaddingMode, maybe_sn
from .vasis import vasis_norm


def conditional_norm(kind: CondKind, channels: int, seg_channels: int, num_labels: int,
                     use_edges: bool, norm: NormKind, hidden: int, *,
                     padding_mode: PaddingMode = "zeros", icpe: bool = False,
                     variation: dict[str, Any] | None = None,
                     size: tuple[int, int] | None = None) -> nn.Module:
    """Build the conditional norm selected by ``kind`` (VASIS when ``variation`` is given).

    Args:
        kind: ``spade`` or ``clade``.
        channels: Feature channels.
        seg_channels: Conditioning-map channels.
        num_labels: Table rows (CLADE, VASIS noise tables).
        use_edges: CLADE edge channel.
        norm: Param-free norm.
        hidden: SPADE hidden width.
        padding_mode: SPADE conv padding.
        icpe: CLADE-ICPE.
        variation: ``{"noise": ..., "position": ...}`` for a VASIS norm, else ``None``.
        size: The layer resolution (VASIS learnable / absolute position codes).
    """
    if variation is not None:
        return vasis_norm(kind, channels, seg_channels, num_labels, norm=norm, hidden=hidden,
                          padding_mode=padding_mode, size=size, use_edges=use_edges,
                          **variation)
    if kind == "spade":
        return SPADE(channels, seg_channels, hidden=hidden, norm=norm, padding_mode=padding_mode)
    if kind == "clade":
        return CLADE(channels, num_labels, use_edges=use_edges, norm=norm, icpe=icpe)
    raise ValueError(f"unknown conditional norm {kind!r} (spade, clade)")


class SPADEResBlock(nn.Module):
    """The SPADE residual block: two (norm, LeakyReLU, conv) stages and a shortcut.

    The shortcut is learned (norm + 1x1 conv, no bias) when the width changes. With CLADE
    and edges the norms output one extra (edge feature) channel, so the convs read one more
    input channel (as in the official CLADE).

    Args:
        fin: Input channels.
        fout: Output channels.
        seg_channels: Channels of the conditioning map.
        num_labels: Rows of CLADE's tables.
        cond: ``spade`` or ``clade``.
        norm: The param-free normalization.
        spectral: Spectral-normalize the convs.
        use_edges: CLADE edge channel.
        hidden: SPADE hidden width.
        padding_mode: Padding of every conv (``zeros``; VASIS uses ``reflect``).
        icpe: CLADE-ICPE norms.
        variation: VASIS options (``noise``, ``position``), or ``None`` for plain norms.
        size: ``(h, w)`` the block runs at (VASIS position codes).
    """

    def __init__(self, fin: int, fout: int, seg_channels: int, num_labels: int,
                 cond: CondKind = "spade", norm: NormKind = "batch", spectral: bool = True,
                 use_edges: bool = False, hidden: int = 128, *,
                 padding_mode: PaddingMode = "zeros", icpe: bool = False,
                 variation: dict[str, Any] | None = None,
                 size: tuple[int, int] | None = None):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        extra = int(cond == "clade" and use_edges)
        self.conv_0 = maybe_sn(nn.Conv2d(fin + extra, fmid, 3, padding=1,
                                         padding_mode=padding_mode), spectral)
        self.conv_1 = maybe_sn(nn.Conv2d(fmid + extra, fout, 3, padding=1,
                                         padding_mode=padding_mode), spectral)

        def cn(c: int) -> nn.Module:
            return conditional_norm(cond, c, seg_channels, num_labels, use_edges, norm, hidden,
                                    padding_mode=padding_mode, icpe=icpe, variation=variation,
                                    size=size)

        self.norm_0 = cn(fin)
        self.norm_1 = cn(fmid)
        if self.learned_shortcut:
            self.conv_s = maybe_sn(nn.Conv2d(fin + extra, fout, 1, bias=False), spectral)
            self.norm_s = cn(fin)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, labels: torch.Tensor,
                noise: torch.Tensor | None = None, dist: torch.Tensor | None = None
                ) -> torch.Tensor:
        """``x`` [B,fin,h,w] -> [B,fout,h,w] (``noise``/``dist`` go to the norms)."""
        x_s = (self.conv_s(self.norm_s(x, seg, labels, noise=noise, dist=dist))
               if self.learned_shortcut else x)
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg, labels, noise=noise, dist=dist), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg, labels, noise=noise, dist=dist), 0.2))
        return x_s + dx


# ------------------------------------------------------------------------- the SPADE trunk
# SPADE's block stack -- head_0, G_middle_0, G_middle_1, up_0..up_3 (+ up_4 for "most") with
# nearest 2x upsampling between them -- is shared by SPADE/CLADE/VASIS, LGGAN's global
# branch, SAFM, CC-FPSE and PosGen; only how a block is called differs. The official layer
# names are kept so checkpoints convert by renaming tables.


def spade_trunk_plan(nf: int, num_upsampling_layers: str = "normal"
                     ) -> list[tuple[str, int, int, int]]:
    """``(name, fin, fout, scale)`` per block; ``scale`` is its size over the latent size."""
    more = int(num_upsampling_layers in ("more", "most"))
    plan = [("head_0", 16 * nf, 16 * nf, 1), ("G_middle_0", 16 * nf, 16 * nf, 2),
            ("G_middle_1", 16 * nf, 16 * nf, 2 << more), ("up_0", 16 * nf, 8 * nf, 4 << more),
            ("up_1", 8 * nf, 4 * nf, 8 << more), ("up_2", 4 * nf, 2 * nf, 16 << more),
            ("up_3", 2 * nf, nf, 32 << more)]
    if num_upsampling_layers == "most":
        plan.append(("up_4", nf, nf // 2, 128))
    return plan


def build_spade_trunk(module: nn.Module, block: Callable[[int, int, int], nn.Module], nf: int,
                      num_upsampling_layers: str = "normal") -> int:
    """Add the trunk's blocks to ``module`` (``block(fin, fout, scale)`` builds one).

    Returns:
        The channels of the trunk's output.
    """
    for name, fin, fout, scale in spade_trunk_plan(nf, num_upsampling_layers):
        setattr(module, name, block(fin, fout, scale))
    return nf // 2 if num_upsampling_layers == "most" else nf


def run_spade_trunk(module: nn.Module, x: torch.Tensor,
                    step: Callable[[nn.Module, torch.Tensor], torch.Tensor],
                    num_upsampling_layers: str = "normal") -> torch.Tensor:
    """Run the trunk on the latent ``x``; ``step(block, x)`` applies one conditioned block."""

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, scale_factor=2.0, mode="nearest")

    x = up(step(module.head_0, x))
    x = step(module.G_middle_0, x)
    if num_upsampling_layers in ("more", "most"):
        x = up(x)
    x = step(module.G_middle_1, x)
    names = ["up_0", "up_1", "up_2", "up_3"] + (["up_4"] if num_upsampling_layers == "most"
                                                 else [])
    for name in names:
        x = step(getattr(module, name), up(x))
    return x
