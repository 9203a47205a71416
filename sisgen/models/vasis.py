"""Variation-aware conditional norms of VASIS (Xu et al., 2023).

"Variation-Aware Semantic Image Synthesis" (github.com/xml94/VASIS).

VASIS raises intra-class variation in SPADE-like generators with two additions to the
conditional norm:

* **semantic noise** -- part of the modulation (``gamma``/``beta``) channels is noise with
  a learnable per-class scale and shift (``noise * table_scale[class] +
  table_shift[class]``). Switches (the official ``noise_nc`` / ``mode_noise`` options):
  ``"semantic"`` (half the channels are noise, concatenated to the class modulation;
  official ``all`` + ``norm_cat``, the paper's models), ``"one_channel"`` (one scale/shift
  per class shared by all noise channels; ``one`` + ``norm_cat``), ``"plus"`` (noise on all
  channels, averaged with the class modulation; ``all`` + ``norm_avg``), ``"rand"`` (plain
  noise, no learned scale/shift; ``random_cat``) or ``None`` (``zero``). As in the official
  code the noise is uniform on [0, 1) (see :func:`uniform_noise`).
* **position code** -- the class modulation is multiplied by ``1 + conv1x1(code)`` where the
  code is ``"absolute"`` (normalized y/x coordinates, official ``fix``), ``"learnable"``
  (a 2-channel parameter at the layer resolution, ``learn``) or ``"relative"`` (the
  intra-class position map of :func:`sisgen.models.layers.intra_class_position_map`,
  CLADE's ICPE), several of them joined by ``+`` (concatenated, 2 channels each: the
  official ``fix_learn``, ``fix_relative``, ``learn_relative`` and ``fix_learn_relative``)
  or ``None``. ``position_channels="all"`` (the paper's models) lets the 1x1 conv predict
  one factor per modulation channel, ``"one"`` (official ``pos_nc=one``) a single factor
  shared by all channels.

Noise is never drawn inside a network: the generator takes one spatial standard-normal map
``[B,C,H,W]`` (drawn outside from seeds) and every norm derives the noise it needs from it
with :func:`layer_noise` (space-to-depth to the layer resolution, channels cycled), which is
parameter free and deterministic, so one seed still gives one image and resampling the map
in a region changes the image mostly there.

Use :func:`vasis_norm` (one layer) or :func:`norm_factory` (``channels -> layer``) from any
generator; the layers are called as ``norm(x, seg, labels, noise=..., dist=...)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .layers import (
    NormKind,
    PaddingMode,
    intra_class_position_map,
    param_free_norm,
    resize_nearest,
)

NoiseMode = Literal["semantic", "one_channel", "plus", "rand"]
#: One position code; a switch may join several with ``+`` (``"absolute+learnable"``).
PositionMode = Literal["absolute", "learnable", "relative"]
PositionChannels = Literal["all", "one"]

_NOISE_MODES = ("semantic", "one_channel", "plus", "rand")
_POSITION_MODES = ("absolute", "learnable", "relative")  # official concatenation order


# --------------------------------------------------------------------------- helpers
def layer_noise(noise: torch.Tensor, channels: int, size: tuple[int, int] | torch.Size
                ) -> torch.Tensor:
    """Derive ``[B,channels,h,w]`` standard-normal noise for one layer from a full map.

    The map ``[B,C,H,W]`` is rearranged space-to-depth by ``s = H // h`` (every value
    used once: ``[B,C*s*s,h,w]``, still i.i.d. N(0, 1)) and its channels are cycled when
    the layer needs more than that. Parameter free, deterministic and ONNX friendly.

    Args:
        noise: ``[B,C,H,W]`` standard-normal map at (a multiple of) the layer resolution.
        channels: Channels wanted.
        size: ``(h, w)`` of the layer.
    """
    b, c, hh, ww = noise.shape
    h, w = int(size[0]), int(size[1])
    s = hh // h
    if s * h != hh or s * w != ww:  # not an integer ratio: fall back to nearest resizing
        z = resize_nearest(noise, (h, w))
        s = 1
    elif s > 1:
        z = noise.reshape(-1, c, h, s, w, s).permute(0, 1, 3, 5, 2, 4).reshape(-1, c * s * s,
                                                                                   h, w)
    else:
        z = noise
    n = c * s * s
    if n >= channels:
        return z[:, :channels]
    idx = torch.arange(channels, device=noise.device) % n
    return z.index_select(1, idx)


def uniform_noise(z: torch.Tensor) -> torch.Tensor:
    """Standard-normal values -> uniform on (0, 1) (the normal CDF, element-wise).

    The official VASIS norms draw their noise with ``torch.rand`` (uniform [0, 1)); the
    network takes standard-normal noise like every sisgen generator, and this maps it onto
    the same distribution, deterministically and ONNX friendly (``Erf``).
    """
    return 0.5 * (1.0 + torch.erf(z * (1.0 / math.sqrt(2.0))))


def relative_position_map(onehot: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Intra-class position map ``[B,2,H,W]`` of a one-hot map, one region per class.

    :func:`sisgen.models.layers.intra_class_position_map` (CLADE's ICPE, the relative
    position code) without instances; pixels of no class (all-zero one-hot) get 0.

    Args:
        onehot: ``[B,C,H,W]`` class one-hot map (no dontcare / edge channels).
        eps: Added to the normalizer (as the official code does).
    """
    c = onehot.shape[1]
    classes = torch.where(onehot.sum(1) > 0, onehot.argmax(1), torch.full_like(
        onehot[:, 0], -1, dtype=torch.long))
    return intra_class_position_map(classes, None, c, eps).to(onehot.dtype)


def absolute_position_code(h: int, w: int) -> torch.Tensor:
    """Normalized coordinates ``[2,h,w]`` in [-1, 1): y then x (the paper's fixed code)."""
    y = (torch.arange(h, dtype=torch.float32) / h * 2 - 1).view(h, 1).expand(h, w)
    x = (torch.arange(w, dtype=torch.float32) / w * 2 - 1).view(1, w).expand(h, w)
    return torch.stack([y, x])


def _lookup(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Rows of ``table`` [N,C] for indices ``idx`` [B,h,w] -> ``[B,C,h,w]``."""
    return F.embedding(idx, table).permute(0, 3, 1, 2)


def _table_index(labels: torch.Tensor | None, seg: torch.Tensor, num_labels: int,
                 size: torch.Size) -> torch.Tensor:
    """Class index map ``[B,h,w]`` for the tables (from ``labels`` or ``argmax(seg)``)."""
    if labels is None:
        return resize_nearest(seg, size)[:, :num_labels].argmax(1)
    lab = resize_nearest(labels.float(), size).long()[:, 0]  # [B,h,w]
    return lab.clamp(0, num_labels - 1)


def parse_position(position: str | None) -> tuple[str, ...]:
    """The codes of a position-code switch, in the official order.

    The order is absolute, learnable, relative: ``"learnable"`` -> ``("learnable",)``,
    ``"relative+absolute"`` -> ``("absolute", "relative")``; ``None`` -> ``()``.
    """
    if position is None:
        return ()
    parts = tuple(p.strip() for p in str(position).split("+"))
    unknown = [p for p in parts if p not in _POSITION_MODES]
    if unknown or len(set(parts)) != len(parts):
        raise ValueError(f"unknown position code {position!r} (one of "
                         f"{', '.join(_POSITION_MODES)}, or several joined by '+', or None)")
    return tuple(p for p in _POSITION_MODES if p in parts)


def uses_relative_position(position: str | None) -> bool:
    """Whether a position-code switch includes the relative (intra-class) code."""
    return "relative" in parse_position(position)


class _Variation(nn.Module):
    """The shared VASIS parts: semantic-noise tables and the position code."""

    def _setup(self, channels: int, num_labels: int, noise: NoiseMode | None,
               position: str | None, size: tuple[int, int] | None,
               position_channels: PositionChannels = "all") -> None:
        if noise is not None and noise not in _NOISE_MODES:
            raise ValueError(f"unknown VASIS noise {noise!r} ({', '.join(_NOISE_MODES)}, None)")
        if position_channels not in ("all", "one"):
            raise ValueError(f"position_channels must be 'all' or 'one', not "
                             f"{position_channels!r}")
        parts = parse_position(position)
        self.noise_mode, self.position = noise, "+".join(parts) or None
        self.position_parts = parts
        self.num_labels = num_labels
        # channels of the class modulation (seg) and of the noise part
        if noise is None:
            self.seg_nc, self.noise_draw, table_nc = channels, 0, 0
        elif noise == "plus":
            self.seg_nc, self.noise_draw, table_nc = channels, channels, channels
        else:
            self.seg_nc = channels // 2
            self.noise_draw = channels - self.seg_nc
            table_nc = 1 if noise == "one_channel" else self.noise_draw
        if noise is not None and noise != "rand":
            self.gamma_noise_gamma = nn.Parameter(torch.rand(num_labels, table_nc))
            self.gamma_noise_beta = nn.Parameter(torch.zeros(num_labels, table_nc))
            self.beta_noise_gamma = nn.Parameter(torch.rand(num_labels, table_nc))
            self.beta_noise_beta = nn.Parameter(torch.zeros(num_labels, table_nc))
        if ("learnable" in parts or "absolute" in parts) and size is None:
            raise ValueError(f"position={position!r} needs the layer size (h, w)")
        if "learnable" in parts:
            self.gamma_pos_learn = nn.Parameter(torch.randn(2, *size))
            self.beta_pos_learn = nn.Parameter(torch.randn(2, *size))
        if "absolute" in parts:
            self.register_buffer("pos_code", absolute_position_code(*size), persistent=False)
        if parts:
            out_nc = 1 if position_channels == "one" else self.seg_nc
            self.conv_pos_gamma = nn.Conv2d(2 * len(parts), out_nc, 1)
            self.conv_pos_beta = nn.Conv2d(2 * len(parts), out_nc, 1)
            # official: all zeros; a small random weight lets the (learnable) code itself get
            # a gradient from the first step on while the modulation stays ~unchanged
            for conv in (self.conv_pos_gamma, self.conv_pos_beta):
                nn.init.normal_(conv.weight, std=0.02)
                nn.init.zeros_(conv.bias)

    def _codes(self, size: torch.Size, batch: int, dist: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """The gamma and beta position codes ``[B or 1, 2*k, h, w]`` (codes concatenated)."""
        gamma, beta = [], []
        for part in self.position_parts:
            if part == "absolute":
                cg = cb = self.pos_code.unsqueeze(0)
            elif part == "learnable":
                cg, cb = self.gamma_pos_learn.unsqueeze(0), self.beta_pos_learn.unsqueeze(0)
            else:
                if dist is None:
                    raise ValueError("position='relative' needs the intra-class position map "
                                     "(dist=relative_position_map(onehot))")
                cg = cb = dist
            gamma.append(resize_nearest(cg, size))
            beta.append(resize_nearest(cb, size))
        if len(gamma) == 1:
            return gamma[0], beta[0]
        n = batch if "relative" in self.position_parts else 1
        return (torch.cat([c.expand(n, -1, -1, -1) for c in gamma], dim=1),
                torch.cat([c.expand(n, -1, -1, -1) for c in beta], dim=1))

    def _position(self, gamma: torch.Tensor, beta: torch.Tensor, dist: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.position_parts:
            return gamma, beta
        cg, cb = self._codes(gamma.shape[-2:], gamma.shape[0], dist)
        # functional calls: a parameter-derived input would trip module hooks under no_grad
        pg = F.conv2d(cg, self.conv_pos_gamma.weight, self.conv_pos_gamma.bias)
        pb = F.conv2d(cb, self.conv_pos_beta.weight, self.conv_pos_beta.bias)
        return gamma * (1 + pg), beta * (1 + pb)

    def _noise(self, gamma: torch.Tensor, beta: torch.Tensor, idx: torch.Tensor,
               noise: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if self.noise_mode is None:
            return gamma, beta
        if noise is None:
            raise ValueError(f"VASIS noise={self.noise_mode!r} needs the noise map "
                             "(noise=[B,C,H,W] standard normal)")
        z = uniform_noise(layer_noise(noise.to(gamma.dtype), 2 * self.noise_draw,
                                      gamma.shape[-2:]))
        n1, n2 = z[:, :self.noise_draw], z[:, self.noise_draw:]  # [B,k,h,w] each
        if self.noise_mode == "rand":
            gn, bn = n1, n2
        else:
            gn = n1 * _lookup(self.gamma_noise_gamma, idx) + _lookup(self.gamma_noise_beta, idx)
            bn = n2 * _lookup(self.beta_noise_gamma, idx) + _lookup(self.beta_noise_beta, idx)
        if self.noise_mode == "plus":
            return (gamma + gn) / 2, (beta + bn) / 2
        return torch.cat([gamma, gn], dim=1), torch.cat([beta, bn], dim=1)


class VariationAwareSPADE(_Variation):
    """SPADE with VASIS semantic noise and position code (VA-SPADE's norm).

    ``out = norm(x) * (1 + gamma) + beta``; the conv-predicted modulation covers
    ``seg_nc`` channels (half of them with concatenated noise), the rest is semantic noise.

    Args:
        channels: Feature channels to normalize.
        seg_channels: Channels of the conditioning map read by the shared conv.
        num_labels: Rows of the noise tables (the official code uses ``seg_channels``).
        hidden: Width of the shared conv.
        kernel_size: Kernel of the prediction convs.
        norm: The param-free normalization.
        padding_mode: ``reflect`` (VASIS default) or ``zeros``.
        noise: Semantic-noise switch (see module docstring).
        position: Position-code switch (see module docstring).
        size: ``(h, w)`` of the layer (for learnable / absolute codes).
        position_channels: ``all`` or ``one`` position-code factor(s) per pixel.
    """

    def __init__(self, channels: int, seg_channels: int, num_labels: int, hidden: int = 128,
                 kernel_size: int = 3, norm: NormKind = "batch",
                 padding_mode: PaddingMode = "reflect", noise: NoiseMode | None = "semantic",
                 position: str | None = "learnable",
                 size: tuple[int, int] | None = None,
                 position_channels: PositionChannels = "all"):
        super().__init__()
        self.param_free_norm = param_free_norm(norm, channels)
        self._setup(channels, num_labels, noise, position, size, position_channels)
        pad = kernel_size // 2
        self.mlp_shared = nn.Sequential(
            nn.Conv2d(seg_channels, hidden, kernel_size, padding=pad, padding_mode=padding_mode),
            nn.ReLU(),
        )
        self.mlp_gamma = nn.Conv2d(hidden, self.seg_nc, kernel_size, padding=pad,
                                   padding_mode=padding_mode)
        self.mlp_beta = nn.Conv2d(hidden, self.seg_nc, kernel_size, padding=pad,
                                  padding_mode=padding_mode)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, labels: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, dist: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Normalize ``x`` [B,C,h,w] conditioned on ``seg`` [B,S,H,W].

        Args:
            x: Features.
            seg: Conditioning map (resized to the features, nearest).
            labels: ``[B,1,H,W]`` table indices (default: ``argmax`` of ``seg``).
            noise: ``[B,C',H',W']`` standard-normal map (when semantic noise is on).
            dist: ``[B,2,H,W]`` intra-class position map (``position="relative"``).
        """
        actv = self.mlp_shared(resize_nearest(seg, x.shape[-2:]))
        gamma, beta = self.mlp_gamma(actv), self.mlp_beta(actv)
        gamma, beta = self._position(gamma, beta, dist)
        idx = _table_index(labels, seg, self.num_labels, x.shape[-2:])
        gamma, beta = self._noise(gamma, beta, idx, noise)
        return self.param_free_norm(x) * (1 + gamma) + beta


class VariationAwareCLADE(_Variation):
    """CLADE with VASIS semantic noise and position code (VA-CLADE's norm).

    ``out = norm(x) * gamma[class] + beta[class]`` for the ``seg_nc`` class channels, the
    rest semantic noise. With ``use_edges`` the instance-edge map passes a 1x1 conv and is
    concatenated as one extra output channel (as CLADE does), so the next conv reads
    ``channels + 1``.

    Args:
        channels: Feature channels to normalize.
        num_labels: Rows of the class tables (classes, plus dontcare when used).
        norm: The param-free normalization.
        use_edges: Append the edge feature channel (edge map = last channel of ``seg``).
        noise: Semantic-noise switch.
        position: Position-code switch.
        size: ``(h, w)`` of the layer (for learnable / absolute codes).
        position_channels: ``all`` or ``one`` position-code factor(s) per pixel.
    """

    def __init__(self, channels: int, num_labels: int, norm: NormKind = "batch",
                 use_edges: bool = False, noise: NoiseMode | None = "semantic",
                 position: str | None = "learnable",
                 size: tuple[int, int] | None = None,
                 position_channels: PositionChannels = "all"):
        super().__init__()
        self.param_free_norm = param_free_norm(norm, channels)
        self._setup(channels, num_labels, noise, position, size, position_channels)
        self.gamma_seg = nn.Parameter(torch.rand(num_labels, self.seg_nc))
        self.beta_seg = nn.Parameter(torch.zeros(num_labels, self.seg_nc))
        if position is not None:  # official zeros would give conv_pos_beta no first gradient
            nn.init.normal_(self.beta_seg, std=0.02)
        self.inst_conv = nn.Conv2d(1, 1, 1) if use_edges else None

    def forward(self, x: torch.Tensor, seg: torch.Tensor, labels: torch.Tensor | None = None,
                noise: torch.Tensor | None = None, dist: torch.Tensor | None = None
                ) -> torch.Tensor:
        """Normalize ``x`` [B,C,h,w] -> ``[B,C(+1),h,w]`` (see :class:`VariationAwareSPADE`)."""
        idx = _table_index(labels, seg, self.num_labels, x.shape[-2:])
        gamma, beta = _lookup(self.gamma_seg, idx), _lookup(self.beta_seg, idx)
        gamma, beta = self._position(gamma, beta, dist)
        gamma, beta = self._noise(gamma, beta, idx, noise)
        out = self.param_free_norm(x) * gamma + beta
        if self.inst_conv is not None:
            edge = resize_nearest(seg[:, -1:], x.shape[-2:])  # the edge channel is last
            out = torch.cat([out, self.inst_conv(edge)], dim=1)
        return out


# --------------------------------------------------------------------------- factories
def vasis_norm(kind: Literal["spade", "clade"], channels: int, seg_channels: int,
               num_labels: int, *, norm: NormKind = "batch", hidden: int = 128,
               kernel_size: int = 3, padding_mode: PaddingMode = "reflect",
               noise: NoiseMode | None = "semantic",
               position: str | None = "learnable",
               size: tuple[int, int] | None = None, use_edges: bool = False,
               position_channels: PositionChannels = "all") -> nn.Module:
    """Build one variation-aware conditional norm.

    Args:
        kind: ``spade`` (conv-predicted modulation) or ``clade`` (per-class tables).
        channels: Feature channels to normalize.
        seg_channels: Channels of the conditioning map (SPADE's shared conv input).
        num_labels: Rows of the class / noise tables.
        norm: The param-free normalization.
        hidden: SPADE hidden width.
        kernel_size: SPADE kernel size.
        padding_mode: SPADE conv padding (``reflect`` in VASIS).
        noise: ``semantic`` | ``one_channel`` | ``plus`` | ``rand`` | ``None``.
        position: ``absolute`` | ``learnable`` | ``relative``, several joined by ``+``
            (``"absolute+learnable+relative"``), or ``None``.
        size: ``(h, w)`` of the layer (needed by learnable / absolute codes).
        use_edges: CLADE only: append the instance-edge feature channel.
        position_channels: ``all`` (one position factor per modulation channel) or
            ``one`` (a single factor shared by all channels).
    """
    if kind == "spade":
        return VariationAwareSPADE(channels, seg_channels, num_labels, hidden=hidden,
                                   kernel_size=kernel_size, norm=norm,
                                   padding_mode=padding_mode, noise=noise, position=position,
                                   size=size, position_channels=position_channels)
    if kind == "clade":
        return VariationAwareCLADE(channels, num_labels, norm=norm, use_edges=use_edges,
                                   noise=noise, position=position, size=size,
                                   position_channels=position_channels)
    raise ValueError(f"unknown VASIS norm kind {kind!r} (spade, clade)")


def norm_factory(seg_channels: int, num_labels: int, *, kind: Literal["spade", "clade"] = "spade",
                 norm: NormKind = "batch", hidden: int = 128, kernel_size: int = 3,
                 padding_mode: PaddingMode = "reflect", noise: NoiseMode | None = "semantic",
                 position: str | None = "learnable",
                 size: tuple[int, int] | None = None, use_edges: bool = False,
                 position_channels: PositionChannels = "all"
                 ) -> Callable[[int], nn.Module]:
    """``channels -> norm`` with everything else fixed (see :func:`vasis_norm`).

    For a learnable / absolute position code pass the layer ``size`` (one factory per
    resolution).
    """

    def make(channels: int) -> nn.Module:
        return vasis_norm(kind, channels, seg_channels, num_labels, norm=norm, hidden=hidden,
                          kernel_size=kernel_size, padding_mode=padding_mode, noise=noise,
                          position=position, size=size, use_edges=use_edges,
                          position_channels=position_channels)

    return make
