"""The VAE part of SPADE's multi-modal training: KL term and the encoder step.

With an image encoder (:class:`sisgen.models.encoder.ConvEncoder`) SPADE trains the style
code ``z`` as a VAE: the encoder gives ``(mu, logvar)`` for the real photo, ``z`` is sampled
with the reparameterization trick and fed to the generator as ``noise``, and the KL
divergence to N(0, I) (weight ``lambda_kld = 0.05`` in the paper) joins the generator loss.
"""

from __future__ import annotations

from typing import Any

import torch

from sisgen.errors import SisgenInputError
from sisgen.models.base import SISGenerator
from sisgen.models.encoder import ConvEncoder, reparameterize

#: The paper's weight of the KL term.
LAMBDA_KLD = 0.05

#: The encoder arguments an objective with a VAE encoder takes, and their defaults:
#: ``ngf`` (``None``: the generator's ``ngf``, as the official code), ``input_size`` (256:
#: the photo is resized to 256x256; a small model at a small size trains much faster with
#: e.g. 64) and ``spectral``.
ENCODER_DEFAULTS: dict[str, Any] = {"ngf": None, "input_size": 256, "spectral": True}


def image_encoder(generator: SISGenerator, ngf: int | None = None, input_size: int = 256,
                  spectral: bool = True) -> ConvEncoder:
    """The VAE image encoder for ``generator``: its ``z_dim``, ``ngf`` wide by default.

    Raises:
        SisgenInputError: The generator takes no style vector (``z_dim == 0``).
    """
    z_dim = int(generator.config.get("z_dim", 0))
    if z_dim <= 0:
        raise SisgenInputError("losses.kld > 0 trains a VAE image encoder, which needs a "
                               "generator with z_dim > 0")
    width = int(generator.config.get("ngf", 64)) if ngf is None else ngf
    return ConvEncoder(ngf=width, z_dim=z_dim, spectral=spectral, input_size=input_size)


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """``KL(N(mu, exp(logvar)) || N(0, I))`` summed over the batch and the code, as SPADE does.

    ``-0.5 * sum(1 + logvar - mu^2 - exp(logvar))``.
    """
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def encode_style(encoder: ConvEncoder, image: torch.Tensor, eps: torch.Tensor | None = None,
                 lambda_kld: float = LAMBDA_KLD) -> tuple[torch.Tensor, torch.Tensor]:
    """Encode real photos to style codes for the generator, with the weighted KL loss.

    Args:
        encoder: The image encoder.
        image: ``[B,3,H,W]`` photos in [-1, 1].
        eps: ``[B,z_dim]`` standard-normal draw (drawn here when omitted).
        lambda_kld: Weight of the KL term.

    Returns:
        ``z`` ``[B,z_dim]`` (the generator's ``noise``) and ``lambda_kld * KL``.
    """
    mu, logvar = encoder(image)
    return reparameterize(mu, logvar, eps), lambda_kld * kl_divergence(mu, logvar)
