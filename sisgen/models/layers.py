"""Primitive layers shared by the SIS generators.

The compact-input helpers that expand integer labels to one-hot maps *on the device*, the
intra-class position map, and the plain conditional normalizations (SPADE, CLADE /
CLADE-ICPE). The VASIS variants live in :mod:`sisgen.models.vasis` (which builds on this
module); the conditional-norm dispatch, the SPADE residual block and the SPADE trunk that
combine both are in :mod:`sisgen.models.blocks`.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrizations

NormKind = Literal["batch", "instance", "none"]
CondKind = Literal["spade", "clade"]
PaddingMode = Literal["zeros", "reflect"]


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


def intra_class_position_map(classes: torch.Tensor, instances: torch.Tensor | None,
                             num_classes: int, eps: float = 1e-5) -> torch.Tensor:
    """CLADE's intra-class positional encoding (ICPE) ``[B,2,H,W]``, computed on the device.

    The map is split into regions -- every instance (``instances > 0``) is one region, and
    the remaining pixels of each class form one region per class (stuff, or a map without
    instances). For each pixel, its offset from its region's centroid in y and in x is
    divided by the largest absolute offset in that region (plus ``eps``), so values lie in
    [-1, 1]. Pixels of no class (``classes`` outside ``0..num_classes-1``, e.g. 255) get 0.

    This is the definition of the official ``cal_dist_masks`` preprocessing (centroid
    offsets normalized per region), except for what a region is: the official script takes
    each 8-connected component of each class of the *label map* (skipping label id 0), which
    needs connected-component labelling -- an iterative, data-dependent algorithm without an
    ONNX / TensorRT form. Instances are what those components mostly are for thing classes
    (touching objects of one class are merged there, split here; an occluded object cut in
    two is one region here); stuff classes are one region per class here.

    Segment statistics over a bounded id space, no data-dependent loops: a region's slot is
    its class (``0..num_classes-1``), or ``num_classes + (id mod H*W)`` for an instance, plus
    one spare slot for unlabeled pixels; sums (exact, in int64) and maxima are accumulated
    with ``scatter_add`` / ``scatter_reduce(amax)`` (ONNX ``ScatterElements`` with
    reduction, opset >= 18) and read back with ``gather``. Instance ids must therefore be
    distinct modulo ``H*W``: compact ids ``1..K`` (what :meth:`sisgen.engines.Generator.
    prepare` passes) always are; so are Cityscapes ids (``< 34000``) at 256x256 and above.

    Args:
        classes: ``[B,H,W]`` integer class ids.
        instances: ``[B,H,W]`` integer instance ids, 0 = none; ``None``: class regions only.
        num_classes: Number of valid class ids.
        eps: Added to the normalizer (as the official script does).

    Returns:
        ``[B,2,H,W]`` float32 map, y offset then x offset.
    """
    b, h, w = classes.shape
    n = h * w
    cls = classes.long().reshape(b, n)
    valid = (cls >= 0) & (cls < num_classes)
    slot = torch.where(valid, cls, torch.full_like(cls, num_classes + n))  # spare slot
    if instances is not None:
        inst = instances.long().reshape(b, n)
        slot = torch.where(valid & (inst > 0), num_classes + torch.remainder(inst, n), slot)
    size = num_classes + n + 1
    pos = torch.arange(n, device=classes.device)
    coords = torch.stack([pos // w, pos % w]).unsqueeze(1).expand(2, b, n)  # [2,B,N] y, x
    zeros = torch.zeros(b, size, dtype=torch.long, device=classes.device)
    area = zeros.scatter_add(1, slot, torch.ones_like(slot)).clamp(min=1)
    out = []
    for c in coords:  # y, then x
        total = zeros.scatter_add(1, slot, c)
        whole = total // area  # exact centroid = whole + rest / area
        centroid = whole.float() + (total - whole * area).float() / area.float()
        offset = c.float() - centroid.gather(1, slot)
        far = torch.zeros(b, size, device=classes.device).scatter_reduce(
            1, slot, offset.abs(), reduce="amax", include_self=True)
        out.append(offset / (far.gather(1, slot) + eps) * valid.float())
    return torch.stack(out, dim=1).reshape(b, 2, h, w)


def example_instances(labels: torch.Tensor, tile: int = 16) -> torch.Tensor:
    """Instance ids for example / test label maps ``[B,H,W]``: odd class ids are *things*.

    Every ``tile x tile`` tile's odd-class pixels form one instance (compact ids ``1..T``
    in raster order of the tiles); even classes are stuff (id 0).
    """
    _, h, w = labels.shape
    rows = torch.arange(h, device=labels.device).view(h, 1) // tile
    cols = torch.arange(w, device=labels.device).view(1, w) // tile
    tile_id = (rows * ((w + tile - 1) // tile) + cols + 1).expand_as(labels)
    return torch.where(labels % 2 == 1, tile_id, torch.zeros_like(tile_id)).long().contiguous()


def param_free_norm(kind: NormKind, channels: int) -> nn.Module:
    """The normalization a conditional norm modulates: BN or IN without affine, or none."""
    if kind == "batch":
        return nn.BatchNorm2d(channels, affine=False)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown param-free norm {kind!r} (batch, instance, none)")


def norm_as_affine(norm: nn.Module) -> tuple[torch.Tensor, torch.Tensor] | None:
    """``(s, t)`` with ``norm(x) = x * s + t`` per channel, for an eval-mode BatchNorm.

    Returns ``None`` for any other norm: InstanceNorm (statistics of each image), a
    BatchNorm in training mode or one without running statistics.
    """
    if (not isinstance(norm, nn.BatchNorm2d) or norm.training or norm.running_var is None
            or norm.running_mean is None):
        return None
    s = (norm.running_var.float() + norm.eps).rsqrt()
    return s, -norm.running_mean.float() * s


@torch.no_grad()
def fold_norm_into_modulation(module: nn.Module) -> bool:
    """Fold the eval-mode BatchNorm of a SPADE-style modulation into its convs.

    For ``module.param_free_norm(x) * (1 + module.mlp_gamma(a)) + module.mlp_beta(a)``:
    the norm is ``x * s + t`` per channel, and
    ``(x*s + t) * (1 + gamma) + beta = x * (1 + gamma') + beta'`` with
    ``gamma' = s*gamma + s - 1`` and ``beta' = beta + t*gamma + t`` -- the same convs with
    rescaled weights and biases. The norm becomes an identity, which saves one full pass
    over the features per layer (and, on onnxruntime's int8 path, the layout transposes
    around a float BatchNorm). For inference copies only: training would learn the wrong
    statistics.

    Returns:
        Whether the norm was folded (see :func:`norm_as_affine` for when it cannot be).
    """
    affine = norm_as_affine(module.param_free_norm)
    if affine is None:
        return False
    s, t = affine
    gamma, beta = module.mlp_gamma, module.mlp_beta
    beta.weight.add_(t.view(-1, 1, 1, 1) * gamma.weight)
    beta.bias.add_(t * gamma.bias + t)
    gamma.weight.mul_(s.view(-1, 1, 1, 1))
    gamma.bias.copy_(s * gamma.bias + s - 1)
    module.param_free_norm = nn.Identity()
    return True


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
        padding_mode: Conv padding, ``zeros`` (SPADE) or ``reflect``.
    """

    def __init__(self, channels: int, seg_channels: int, hidden: int = 128,
                 kernel_size: int = 3, norm: NormKind = "batch",
                 padding_mode: PaddingMode = "zeros"):
        super().__init__()
        pad = kernel_size // 2
        self.param_free_norm = param_free_norm(norm, channels)
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(seg_channels, hidden, kernel_size, padding=pad, padding_mode=padding_mode),
            nn.ReLU(),
        )
        self.mlp_gamma = nn.Conv2d(hidden, channels, kernel_size, padding=pad,
                                   padding_mode=padding_mode)
        self.mlp_beta = nn.Conv2d(hidden, channels, kernel_size, padding=pad,
                                  padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, labels: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, dist: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Normalize ``x`` [B,C,h,w] conditioned on ``seg`` [B,S,H,W] (other inputs unused)."""
        actv = self.mlp_shared(resize_nearest(seg, x.shape[-2:]))
        return self.param_free_norm(x) * (1 + self.mlp_gamma(actv)) + self.mlp_beta(actv)

    def fold_norm(self) -> bool:
        """Fold an eval-mode BatchNorm into the modulation convs (inference copies only).

        See :func:`fold_norm_into_modulation`.

        Returns:
            Whether the norm was folded.
        """
        return fold_norm_into_modulation(self)


class CLADE(nn.Module):
    """Class-adaptive denormalization (Tan et al., 2021), optionally with ICPE.

    gamma and beta are looked up per class from learned tables instead of being predicted
    by convs: ``out = norm(x) * gamma[label] + beta[label]``. With ``icpe`` (CLADE-ICPE) the
    looked-up values are modulated by the intra-class position map ``dist`` [B,2,H,W]:
    ``gamma * (1 + conv1x1(dist))`` (same for beta, zero-initialized convs). With
    ``use_edges`` the instance-edge map (the last ``seg`` channel) passes a 1x1 conv and is
    concatenated as an extra output channel, as the official CLADE does, so the conv that
    follows reads ``channels + 1`` channels.

    Args:
        channels: Feature channels to normalize.
        num_labels: Rows of the affine tables (classes, plus dontcare when used).
        use_edges: Append the edge feature channel.
        norm: The param-free normalization.
        icpe: Modulate by the intra-class positional encoding.
    """

    def __init__(self, channels: int, num_labels: int, use_edges: bool = False,
                 norm: NormKind = "batch", icpe: bool = False):
        super().__init__()
        self.param_free_norm = param_free_norm(norm, channels)
        self.weight = nn.Parameter(torch.empty(num_labels, channels))
        self.bias = nn.Parameter(torch.empty(num_labels, channels))
        nn.init.uniform_(self.weight)
        # official: zeros; with ICPE a zero table would leave dist_conv_b without a gradient
        # at the start (beta * conv(dist) = 0), so it starts slightly off zero
        nn.init.normal_(self.bias, std=0.02) if icpe else nn.init.zeros_(self.bias)
        self.inst_conv = nn.Conv2d(1, 1, 1) if use_edges else None
        self.icpe = icpe
        if icpe:
            self.dist_conv_w = nn.Conv2d(2, 1, 1)
            self.dist_conv_b = nn.Conv2d(2, 1, 1)
            for conv in (self.dist_conv_w, self.dist_conv_b):
                nn.init.zeros_(conv.weight)
                nn.init.zeros_(conv.bias)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, labels: torch.Tensor,
                noise: torch.Tensor | None = None, dist: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Normalize ``x`` [B,C,h,w] -> ``[B,C(+1),h,w]``.

        Args:
            x: Features.
            seg: Conditioning map (only its last, edge, channel is read with edges).
            labels: ``[B,1,H,W]`` row indices of the tables.
            noise: Unused.
            dist: ``[B,2,H,W]`` intra-class position map (with ``icpe``).
        """
        size = x.shape[-2:]
        lab = resize_nearest(labels.float(), size).long().squeeze(1)  # [B,h,w]
        gamma = F.embedding(lab, self.weight).permute(0, 3, 1, 2)  # [B,C,h,w]
        beta = F.embedding(lab, self.bias).permute(0, 3, 1, 2)
        if self.icpe:
            if dist is None:
                raise ValueError("CLADE-ICPE needs the intra-class position map (dist)")
            d = resize_nearest(dist, size)
            gamma = gamma * (1 + self.dist_conv_w(d))
            beta = beta * (1 + self.dist_conv_b(d))
        out = self.param_free_norm(x) * gamma + beta
        if self.inst_conv is not None:
            edge = resize_nearest(seg[:, -1:], size)  # the edge channel is last
            out = torch.cat([out, self.inst_conv(edge)], dim=1)
        return out

    @torch.no_grad()
    def fold_norm(self) -> bool:
        """Fold an eval-mode BatchNorm into the tables (inference copies only).

        ``(x*s + t) * gamma + beta = x * (s*gamma) + (t*gamma + beta)``. Not with ICPE,
        whose position term scales gamma and beta by different factors.

        Returns:
            Whether the norm was folded.
        """
        affine = None if self.icpe else norm_as_affine(self.param_free_norm)
        if affine is None:
            return False
        s, t = affine
        self.bias.add_(t * self.weight)
        self.weight.mul_(s)
        self.param_free_norm = nn.Identity()
        return True
