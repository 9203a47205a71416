"""SPADE's VAE image encoder: style from a reference image (Park et al., 2019).

:class:`ConvEncoder` maps an RGB image to the mean and log-variance of a Gaussian over the
style code ``z``; a sample ``z = mu + eps * exp(logvar / 2)`` (``eps`` drawn outside, see
:func:`reparameterize`) is what a ``SPADEGenerator`` built with ``z_dim > 0`` takes as its
``noise`` input. The encoder is its own module, not part of the generator's parameters;
the KL term that trains it lives in :mod:`training.vae`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import maybe_sn


class ConvEncoder(nn.Module):
    """Six stride-2 convs (SN, instance norm, LeakyReLU 0.2) and two linear heads.

    As in the official code the input is resized to 256x256 (bilinear), the widths are
    ``ngf * (1, 2, 4, 8, 8, 8)`` and the last feature map is 4x4. Convs followed by the
    (affine-free) instance norm have no bias. ``layerN`` is ``Sequential(conv, norm)``.

    Args:
        ngf: Base width (the official encoder uses the generator's ``ngf``, 64).
        z_dim: Size of ``mu`` / ``logvar`` (256 in the paper).
        spectral: Spectral-normalize the convs.
        input_size: Square side the image is resized to; 6 layers for >= 256, else 5.
    """

    def __init__(self, ngf: int = 64, z_dim: int = 256, spectral: bool = True,
                 input_size: int = 256):
        super().__init__()
        self.input_size = input_size
        widths = [3, ngf, 2 * ngf, 4 * ngf, 8 * ngf, 8 * ngf]
        n = 6 if input_size >= 256 else 5
        if n == 6:
            widths.append(8 * ngf)
        for i in range(n):
            conv = nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1, bias=False)
            self.add_module(f"layer{i + 1}", nn.Sequential(
                maybe_sn(conv, spectral), nn.InstanceNorm2d(widths[i + 1], affine=False)))
        self.num_layers = n
        self.s0 = input_size // 2**n
        self.fc_mu = nn.Linear(8 * ngf * self.s0 * self.s0, z_dim)
        self.fc_var = nn.Linear(8 * ngf * self.s0 * self.s0, z_dim)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode ``image`` [B,3,H,W] in [-1, 1] -> ``(mu, logvar)``, each ``[B,z_dim]``."""
        s = self.input_size
        if tuple(image.shape[-2:]) != (s, s):
            image = F.interpolate(image, size=(s, s), mode="bilinear", align_corners=False)
        x = image
        for i in range(self.num_layers):
            if i:
                x = F.leaky_relu(x, 0.2)
            x = getattr(self, f"layer{i + 1}")(x)
        x = F.leaky_relu(x, 0.2).flatten(1)  # [B, 8*ngf*s0*s0]
        return self.fc_mu(x), self.fc_var(x)


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """``z = mu + eps * exp(logvar / 2)``; ``eps`` standard normal (drawn here if omitted).

    Pass ``eps`` (e.g. from :func:`sisgen.noise.noise_from_seeds`) for reproducible
    styles; ``eps = 0`` gives the mean style.
    """
    if eps is None:
        eps = torch.randn_like(mu)
    return mu + eps * torch.exp(0.5 * logvar)
