"""PosGen: a SPADE residual trunk read out by a coordinate-conditioned pixel-wise MLP.

The label map is turned into a feature map by the SPADE residual generator's trunk (a
latent tensor from the noise vector, refined by SPADE residual blocks and nearest
upsampling up to the label resolution). The image is not produced by a final conv but by
an implicit decoder: for every *output* pixel, the trunk features are sampled bilinearly
at the pixel's continuous position, its normalized coordinates are appended, the pair is
lifted into Fourier features ``[sin(2 pi B v), cos(2 pi B v)]`` and a pixel-wise MLP
(1x1 convs) maps them to RGB. Because the coordinates are continuous, the decoder can
be queried on any grid: ``output_scale=2`` renders ``[B,3,2H,2W]`` from a ``[B,H,W]``
label map with the same weights.

Layer names follow the SPADE generator (``fc``, ``head_0``, ``G_middle_*``, ``up_*``)
for the trunk; the decoder is ``fourier`` (the frequency matrix ``B``), ``mlp`` and
``conv_img``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..vocab import Vocabulary
from .base import SISGenerator, capture_config, register_architecture
from .blocks import SPADEResBlock, build_spade_trunk, run_spade_trunk
from .layers import NormKind, resize_nearest
from .registry import DatasetSpec, register_model

#: Upsamplings of the trunk: the latent tensor is ``1/2^5`` of the label resolution.
_NUM_UPS = 5


def pixel_coordinates(height: int, width: int, device: torch.device | None = None,
                      dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Normalized pixel-centre coordinates of an ``height x width`` grid.

    Each axis spans ``[-1, 1]`` over the *image extent* (pixel centres at
    ``(i + 0.5) / n * 2 - 1``), so grids of different sizes sample the same continuous
    frame: a 2x grid interleaves with the 1x one.

    Returns:
        ``[1,2,H,W]`` with channel 0 = x (width axis) and channel 1 = y (height axis).
    """
    ys = (torch.arange(height, device=device, dtype=dtype) + 0.5) * (2.0 / height) - 1.0
    xs = (torch.arange(width, device=device, dtype=dtype) + 0.5) * (2.0 / width) - 1.0
    grid_y = ys.view(1, 1, height, 1).expand(1, 1, height, width)
    grid_x = xs.view(1, 1, 1, width).expand(1, 1, height, width)
    return torch.cat([grid_x, grid_y], dim=1)


class FourierFeatures(nn.Module):
    """Fourier feature mapping ``v -> [sin(2 pi B v), cos(2 pi B v)]`` per pixel.

    ``B`` is a learned ``[num_frequencies, in_channels]`` matrix (a bias-free 1x1 conv),
    initialised from a Gaussian as in Tancik et al. (2020): standard deviation
    ``coord_scale`` on the coordinate columns (the last ``coord_channels``) and
    ``1 / sqrt(feature channels)`` on the feature columns.

    Args:
        in_channels: Channels of ``v`` (features + coordinates).
        num_frequencies: Rows of ``B``; the output has twice as many channels.
        coord_channels: How many of the last input channels are coordinates.
        coord_scale: Initial frequency spread on the coordinates.
    """

    def __init__(self, in_channels: int, num_frequencies: int, coord_channels: int = 2,
                 coord_scale: float = 10.0):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, num_frequencies, 1, bias=False)
        feat = in_channels - coord_channels
        with torch.no_grad():
            nn.init.normal_(self.proj.weight[:, :feat], std=1.0 / math.sqrt(max(feat, 1)))
            nn.init.normal_(self.proj.weight[:, feat:], std=coord_scale)
        self.out_channels = 2 * num_frequencies

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """``v`` [B,C,H,W] -> [B,2F,H,W]."""
        arg = (2.0 * math.pi) * self.proj(v)  # [B,F,H,W]
        return torch.cat([torch.sin(arg), torch.cos(arg)], dim=1)


@register_architecture
class PosGenGenerator(SISGenerator):
    """SPADE residual trunk + Fourier-feature pixel-wise MLP decoder.

    Args:
        num_classes: Label ids ``0..num_classes-1`` (one-hot channels).
        height: Label-map height (a multiple of 32).
        width: Label-map width (a multiple of 32).
        ngf: Trunk base width; the widest blocks have ``16 * ngf`` channels and the trunk
            ends with ``ngf`` feature channels at the label resolution.
        z_dim: Noise vector size (the GauGAN-style latent input); 0 for the deterministic
            mode, where the latent tensor is a conv of the downsampled label map.
        use_edges: Take the instance-edge map as an extra conditioning channel.
        dontcare: Give ignore pixels (255) their own one-hot channel (last).
        norm: Param-free norm inside SPADE (``batch`` or ``instance``).
        spectral: Spectral normalization on the residual-block convs.
        spade_hidden: Hidden width of SPADE's shared conv.
        fourier_dim: Frequencies of the Fourier mapping (the decoder input has
            ``2 * fourier_dim`` channels).
        fourier_scale: Initial frequency spread on the pixel coordinates.
        mlp_width: Width of the pixel-wise MLP.
        mlp_layers: Hidden layers of the pixel-wise MLP (each 1x1 conv + LeakyReLU).
        output_scale: Output size / label size (any positive factor; 2 renders
            ``[B,3,2H,2W]``).
    """

    @capture_config
    def __init__(
        self,
        num_classes: int,
        height: int = 256,
        width: int = 512,
        ngf: int = 64,
        z_dim: int = 256,
        use_edges: bool = True,
        dontcare: bool = False,
        norm: NormKind = "batch",
        spectral: bool = True,
        spade_hidden: int = 128,
        fourier_dim: int = 128,
        fourier_scale: float = 10.0,
        mlp_width: int = 256,
        mlp_layers: int = 4,
        output_scale: float = 1.0,
    ):
        super().__init__()
        if height % 2**_NUM_UPS or width % 2**_NUM_UPS:
            raise ValueError(f"height and width ({height}x{width}) must be multiples of "
                             f"2^{_NUM_UPS} = {2**_NUM_UPS}")
        if output_scale <= 0:
            raise ValueError(f"output_scale must be positive, got {output_scale}")
        if mlp_layers < 1:
            raise ValueError(f"mlp_layers must be >= 1, got {mlp_layers}")
        self._num_classes = num_classes
        self._height, self._width = height, width
        self.z_dim, self.use_edges, self.dontcare = z_dim, use_edges, dontcare
        self.ngf = ngf
        self.output_scale = float(output_scale)
        self.sh, self.sw = height // 2**_NUM_UPS, width // 2**_NUM_UPS
        nf = ngf
        seg_nc = num_classes + int(dontcare) + int(use_edges)
        num_labels = num_classes + int(dontcare)

        # ---- trunk: the SPADE residual generator up to the label resolution
        if z_dim > 0:
            self.fc = nn.Linear(z_dim, 16 * nf * self.sh * self.sw)
        else:
            self.fc = nn.Conv2d(seg_nc, 16 * nf, 3, padding=1)

        def block(fin: int, fout: int) -> SPADEResBlock:
            return SPADEResBlock(fin, fout, seg_nc, num_labels, cond="spade", norm=norm,
                                 spectral=spectral, hidden=spade_hidden)

        build_spade_trunk(self, lambda fin, fout, _: block(fin, fout), nf)

        # ---- implicit decoder: Fourier features of (features, coordinates) -> pixel MLP
        self.fourier = FourierFeatures(nf + 2, fourier_dim, coord_channels=2,
                                       coord_scale=fourier_scale)
        layers: list[nn.Module] = []
        fin = self.fourier.out_channels
        for _ in range(mlp_layers):
            layers += [nn.Conv2d(fin, mlp_width, 1), nn.LeakyReLU(0.2)]
            fin = mlp_width
        self.mlp = nn.Sequential(*layers)
        self.conv_img = nn.Conv2d(mlp_width, 3, 1)

    # ------------------------------------------------------------------- contract

    @property
    def output_resolution(self) -> tuple[int, int]:
        """``(H', W')`` of the generated images (``output_scale`` times the labels)."""
        return (int(round(self._height * self.output_scale)),
                int(round(self._width * self.output_scale)))

    def noise_shape(self, height: int | None = None, width: int | None = None) -> tuple[int, ...]:
        """``(z_dim,)``, or ``()`` in the deterministic mode."""
        return (self.z_dim,) if self.z_dim > 0 else ()

    # -------------------------------------------------------------------- forward
    def features(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                 noise: torch.Tensor | None = None) -> torch.Tensor:
        """The trunk's feature map ``[B,ngf,H,W]`` at the label resolution."""
        if labels.dim() != 3:
            raise ValueError(f"labels must be [B,H,W], got {tuple(labels.shape)}")
        if tuple(labels.shape[-2:]) != self.resolution:
            raise ValueError(f"labels must be {self._height}x{self._width}, got "
                             f"{tuple(labels.shape[-2:])}")
        seg = self.condition(labels, edges)
        idx = labels.long().unsqueeze(1)  # SPADE does not read it; the block API wants it
        if self.z_dim > 0:
            if noise is None or noise.dim() != 2 or noise.shape[-1] != self.z_dim:
                raise ValueError(f"noise [B,{self.z_dim}] required, got "
                                 f"{None if noise is None else tuple(noise.shape)}")
            x = self.fc(noise).view(-1, 16 * self.ngf, self.sh, self.sw)
        else:
            x = self.fc(resize_nearest(seg, (self.sh, self.sw)))

        return run_spade_trunk(self, x, lambda blk, t: blk(t, seg, idx))

    def decode(self, feats: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        """Render ``feats`` [B,C,h,w] on an ``size`` pixel grid -> ``[B,3,*size]``.

        Features are sampled bilinearly at the output pixel centres (the same frame as
        :func:`pixel_coordinates`), so any ``size`` is valid.
        """
        if tuple(feats.shape[-2:]) != tuple(size):
            feats = F.interpolate(feats, size=tuple(size), mode="bilinear",
                                  align_corners=False)
        coords = pixel_coordinates(size[0], size[1], feats.device, feats.dtype)
        coords = coords.expand(feats.shape[0], -1, -1, -1)  # [B,2,H',W']
        h = self.fourier(torch.cat([F.leaky_relu(feats, 0.2), coords], dim=1))
        return torch.tanh(self.conv_img(self.mlp(h)))

    def forward(self, labels: torch.Tensor, edges: torch.Tensor | None = None,
                noise: torch.Tensor | None = None) -> torch.Tensor:
        """Generate images.

        Args:
            labels: ``[B,H,W]`` integer class ids (255 = ignore).
            edges: ``[B,1,H,W]`` instance-edge map in {0, 1} (when ``use_edges``).
            noise: ``[B,z_dim]`` standard normal noise (when ``z_dim > 0``).

        Returns:
            ``[B,3,H',W']`` images in [-1, 1], ``(H', W') = output_resolution``.
        """
        return self.decode(self.features(labels, edges, noise), self.output_resolution)


@register_model(tiny={"ngf": 4, "spade_hidden": 8, "z_dim": 8, "fourier_dim": 8,
                      "mlp_width": 16, "mlp_layers": 2})
def posgen(spec: DatasetSpec, vocab: Vocabulary, **overrides: Any) -> SISGenerator:
    """PosGen: SPADE residual trunk + Fourier-feature pixel-wise MLP decoder."""
    args: dict[str, Any] = dict(
        num_classes=vocab.num_classes, height=spec.height, width=spec.width, ngf=64,
        z_dim=256, use_edges=spec.use_edges, dontcare=spec.dontcare, norm="batch",
        spectral=True,
    )
    args.update(overrides)
    return PosGenGenerator(**args)
