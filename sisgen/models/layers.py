"""Shared building blocks of the SIS generators.

Conditional normalizations (SPADE, CLADE), the SPADE residual block, and the compact-input
helpers that expand integer labels to one-hot maps *on the device*.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

NormKind = Literal["batch", "instance", "none"]
CondKind = Literal["spade", "clade"]


def maybe_sn(module: nn.Module, enabled: bool) -> nn.Module:
    """Wrap ``module`` in spectral normalization when ``enabled``."""
    return parametrizations.spectral_norm(module) if enabled else module


def labels_to_onehot(
    labels: torch.Tensor, num_classes: int, dontcare: bool, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Expand integer labels ``[B,H,W]`` into a one-hot map ``[B,C(+1),H,W]`` on their device.

    Ignored pixels (255) get the extra *dontcare* channel (last) when ``dontcare`` is set,
    otherwise an all-zero vector. Ids outside ``0..num_classes-1`` also give zeros.
    Built from a comparison rather than ``scatter`` so it exports cleanly to ONNX.
    """
    n = num_classes + int(dontcare)
    lab = labels.long().unsqueeze(1)  # [B,1,H,W]
    if dontcare:
        lab = torch.where(lab == 255, torch.full_like(lab, num_classes), lab)
    classes = torch.arange(n, device=labels.device).view(1, n, 1, 1)
    return (lab == classes).to(dtype)


def resize_nearest(x: torch.Tensor, size: tuple[int, int] | torch.Size) -> torch.Tensor:
    """Nearest-neighbour resize of a ``[B,C,H,W]`` map (labels are never blended)."""
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=tuple(size), mode="nearest")


def param_free_norm(kind: NormKind, channels: int) -> nn.Module:
    """The normalization a conditional norm modulates: BN or IN without affine, or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown param-free norm {kind!r} (batch, instance, none)")


class SPADE(nn.Module):
    """Spatially-adaptive denormalization (Park et al., 2019).

    ``out = norm(x) * (1 + gamma(seg)) + beta(seg)`` with gamma and beta predicted by a
    small conv net from the segmentation map resized to the feature size.

    Args:
        channels: Feature channels to normalize.
        seg_channels: Channels of the conditioning map (one-hot + optional edge channel).
        hidden: Width of the shared conv.
        kernel_size: Kernel of the prediction convs.
        norm: The param-free normalization.
    """

    def __init__(self, channels: int, seg_channels: int, hidden: int = 128,
                 kernel_size: int = 3, norm: NormKind = "batch"):
        super().__init__()
        pad = kernel_size // 2
        self.param_free_norm = param_free_norm(norm, channels)
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(seg_channels, hidden, kernel_size, padding=pad), nn.ReLU()
        )
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size, padding=pad)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size, padding=pad)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Normalize ``x`` [B,C,h,w] conditioned on ``seg`` [B,S,H,W] (``labels`` unused)."""
        actv = self.mlp_shared(resize_nearest(seg, x.shape[-2:]))
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)


class CLADE(nn.Module):
    """Class-adaptive denormalization (Tan et al., 2021).

    gamma and beta are looked up per class from learned tables instead of being predicted
    by convs: ``out = norm(x) * gamma[label] + beta[label]``. When the generator uses
    instance edges, a learned per-channel offset is added on edge pixels so that adjacent
    objects of one class stay separable.

    Args:
        channels: Feature channels to normalize.
        num_labels: Rows of the affine tables (classes, plus dontcare when used).
        use_edges: Add the learned edge offset.
        norm: The param-free normalization.
    """

    def __init__(self, channels: int, num_labels: int, use_edges: bool = False,
                 norm: NormKind = "batch"):
        super().__init__()
        self.param_free_norm = param_free_norm(norm, channels)
        self.weight = nn.Parameter(torch.empty(num_labels, channels))
        self.bias = nn.Parameter(torch.empty(num_labels, channels))
        nn.init.uniform_(self.weight, 0.9, 1.1)
        nn.init.zeros_(self.bias)
        self.edge_weight = nn.Parameter(torch.zeros(channels)) if use_edges else None
        self.edge_bias = nn.Parameter(torch.zeros(channels)) if use_edges else None

    def forward(self, x: torch.Tensor, seg: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Normalize ``x`` [B,C,h,w]; ``labels`` [B,1,H,W] are row indices of the tables."""
        lab = resize_nearest(labels.float(), x.shape[-2:]).long().squeeze(1)  # [B,h,w]
        gamma = F.embedding(lab, self.weight).permute(0, 3, 1, 2)
        beta = F.embedding(lab, self.bias).permute(0, 3, 1, 2)
        if self.edge_weight is not None:
            edge = resize_nearest(seg[:, -1:], x.shape[-2:])  # the edge channel is last
            gamma = gamma + edge * self.edge_weight.view(1, -1, 1, 1)
            beta = beta + edge * self.edge_bias.view(1, -1, 1, 1)
        return self.param_free_norm(x) * gamma + beta


def conditional_norm(kind: CondKind, channels: int, seg_channels: int, num_labels: int,
                     use_edges: bool, norm: NormKind, hidden: int) -> nn.Module:
    """Build the conditional norm selected by ``kind``."""
    if kind == "spade":
        return SPADE(channels, seg_channels, hidden=hidden, norm=norm)
    if kind == "clade":
        return CLADE(channels, num_labels, use_edges=use_edges, norm=norm)
    raise ValueError(f"unknown conditional norm {kind!r} (spade, clade)")


class SPADEResBlock(nn.Module):
    """The SPADE residual block: two (norm, LeakyReLU, conv) stages and a shortcut.

    The shortcut is learned (norm + 1x1 conv, no bias) when the width changes.

    Args:
        fin: Input channels.
        fout: Output channels.
        seg_channels: Channels of the conditioning map.
        num_labels: Rows of CLADE's tables.
        cond: ``spade`` or ``clade``.
        norm: The param-free normalization.
        spectral: Spectral-normalize the convs.
        use_edges: CLADE edge offset.
        hidden: SPADE hidden width.
    """

    def __init__(self, fin: int, fout: int, seg_channels: int, num_labels: int,
                 cond: CondKind = "spade", norm: NormKind = "batch", spectral: bool = True,
                 use_edges: bool = False, hidden: int = 128):
        super().__init__()
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        self.conv_0 = maybe_sn(nn.Conv2d(fin, fmid, 3, padding=1), spectral)
        self.conv_1 = maybe_sn(nn.Conv2d(fmid, fout, 3, padding=1), spectral)

        def cn(c: int) -> nn.Module:
            return conditional_norm(cond, c, seg_channels, num_labels, use_edges, norm, hidden)

        self.norm_0 = cn(fin)
        self.norm_1 = cn(fmid)
        if self.learned_shortcut:
            self.conv_s = maybe_sn(nn.Conv2d(fin, fout, 1, bias=False), spectral)
            self.norm_s = cn(fin)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``x`` [B,fin,h,w] -> [B,fout,h,w]."""
        x_s = self.conv_s(self.norm_s(x, seg, labels)) if self.learned_shortcut else x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg, labels), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg, labels), 0.2))
        return x_s + dx
