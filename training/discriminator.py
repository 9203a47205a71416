"""Multi-scale PatchGAN discriminator (pix2pixHD / SPADE style).

Each scale is a PatchGAN over ``concat(one-hot label map, image)``; the scales see the
input at full, half, quarter... resolution. Intermediate features are returned for the
feature-matching loss. :func:`discriminate` runs any such conditional discriminator on
generated and real images in one batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from sisgen.models.layers import maybe_sn

#: A multi-scale discriminator's output: per scale, its features (the logits last).
Features = list[list[torch.Tensor]]


def discriminate(discriminator: nn.Module, seg: torch.Tensor, fake: torch.Tensor,
                 real: torch.Tensor) -> tuple[Features, Features]:
    """Run ``discriminator(seg, image)`` on fake and real in one batch and split.

    One batch gives both halves the same normalization statistics, as the official SPADE,
    SESAME, LGGAN and SAFM trainers do.

    Returns:
        ``(pred_fake, pred_real)``: the features of each half, per scale.
    """
    out = discriminator(torch.cat([seg, seg]), torch.cat([fake, real]))
    n = fake.shape[0]
    return ([[t[:n] for t in scale] for scale in out],
            [[t[n:] for t in scale] for scale in out])


class PatchDiscriminator(nn.Module):
    """A PatchGAN: strided 4x4 convs, instance norm, LeakyReLU; one logit per patch.

    Args:
        in_channels: Label channels + 3 image channels.
        ndf: Width of the first layer (doubling, capped at ``8 * ndf``).
        n_layers: Conv layers before the output layer.
        spectral: Spectral normalization on the convs.
    """

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 4, spectral: bool = True):
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(
            nn.Conv2d(in_channels, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2)
        )]
        nf = ndf
        for n in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, ndf * 8)
            stride = 1 if n == n_layers - 1 else 2
            layers.append(nn.Sequential(
                maybe_sn(nn.Conv2d(nf_prev, nf, 4, stride=stride, padding=2, bias=False), spectral),
                nn.InstanceNorm2d(nf, affine=False),
                nn.LeakyReLU(0.2),
            ))
        layers.append(nn.Sequential(nn.Conv2d(nf, 1, 4, stride=1, padding=2)))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """All intermediate features; the last entry is the patch logit map."""
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiScaleDiscriminator(nn.Module):
    """Several :class:`PatchDiscriminator` applied to a pyramid of the input.

    Args:
        in_channels: Label channels + 3.
        num_d: Number of scales.
        ndf: Base width of each discriminator.
        n_layers: Layers per discriminator.
        spectral: Spectral normalization.
    """

    def __init__(self, in_channels: int, num_d: int = 2, ndf: int = 64, n_layers: int = 4,
                 spectral: bool = True):
        super().__init__()
        self.discriminators = nn.ModuleList(
            PatchDiscriminator(in_channels, ndf, n_layers, spectral) for _ in range(num_d)
        )

    def forward(self, seg: torch.Tensor, image: torch.Tensor) -> Features:
        """Features per scale for ``seg`` [B,S,H,W] and ``image`` [B,3,H,W]."""
        x = torch.cat([seg, image], dim=1)
        out = []
        for i, d in enumerate(self.discriminators):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out
