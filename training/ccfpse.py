"""CC-FPSE training parts: the FPSE discriminator and the losses.

The feature-pyramid semantics-embedding (FPSE) discriminator (Liu et al., NeurIPS 2019)
reads the image only. A bottom-up conv encoder (``enc1..5``, strides 2) and a top-down
pathway with 1x1 laterals (``lat2..5``, bilinear upsampling) give features at 1/4, 1/8
and 1/16 of the input; at each of them ``final*`` convs feed

* a shared 1x1 real/fake head (``tf``): a patch score, and
* a shared 1x1 semantic head (``seg``) whose features are dotted, pixel by pixel, with an
  embedding of the label map (``embedding``, a 1x1 conv, average-pooled to that scale):
  the *semantics-embedding* score, added to the patch score.

Losses as the paper trains (official defaults): hinge adversarial terms averaged over the
three scales, discriminator feature matching on ``enc2..enc5`` (weight 20), a VGG
perceptual loss (weight 10) and, in the VAE mode, the KL term of SPADE's image encoder
(weight 0.05; :mod:`training.vae`). :class:`CCFPSEObjective` puts them together for the
trainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sisgen.models.base import SISGenerator
from sisgen.models.ccfpse import CCFPSEGenerator
from sisgen.models.layers import maybe_sn

from .objective import Batch, Objective, Terms, register_objective
from .perceptual import with_paper_vgg
from .vae import ENCODER_DEFAULTS, encode_style, image_encoder


def _sn_in_conv(cin: int, cout: int, kernel_size: int, stride: int = 1, spectral: bool = True
                ) -> nn.Sequential:
    """The official ``spectralinstance`` unit: SN conv (no bias) -> IN -> LeakyReLU(0.2)."""
    conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2,
                     bias=False)
    return nn.Sequential(nn.Sequential(maybe_sn(conv, spectral),
                                       nn.InstanceNorm2d(cout, affine=False)),
                         nn.LeakyReLU(0.2))


@dataclass
class FPSEOutput:
    """What the FPSE discriminator returns.

    Attributes:
        features: ``enc2..enc5`` outputs (for feature matching), finest first.
        scores: Patch scores ``[B,1,H/4,W/4]``, ``[B,1,H/8,W/8]``, ``[B,1,H/16,W/16]``
            (real/fake + semantics-embedding term).
    """

    features: list[torch.Tensor]
    scores: list[torch.Tensor]

    def split(self) -> tuple[FPSEOutput, FPSEOutput]:
        """Split a ``cat([fake, real])`` batch into its fake and real halves."""
        def half(ts: list[torch.Tensor], second: bool) -> list[torch.Tensor]:
            return [t[t.shape[0] // 2:] if second else t[:t.shape[0] // 2] for t in ts]

        return (FPSEOutput(half(self.features, False), half(self.scores, False)),
                FPSEOutput(half(self.features, True), half(self.scores, True)))


class FPSEDiscriminator(nn.Module):
    """Feature-pyramid semantics-embedding discriminator.

    Args:
        label_channels: Channels of the label map it embeds (the generator's semantic
            input: one-hot classes, dontcare, instance edge).
        ndf: Base width (the paper: 64).
        spectral: Spectral normalization on the normalized convs.
    """

    def __init__(self, label_channels: int, ndf: int = 64, spectral: bool = True):
        super().__init__()
        nf = ndf

        def unit(cin: int, cout: int, k: int, stride: int = 1) -> nn.Sequential:
            return _sn_in_conv(cin, cout, k, stride, spectral)

        # bottom-up
        self.enc1 = unit(3, nf, 3, 2)
        self.enc2 = unit(nf, 2 * nf, 3, 2)
        self.enc3 = unit(2 * nf, 4 * nf, 3, 2)
        self.enc4 = unit(4 * nf, 8 * nf, 3, 2)
        self.enc5 = unit(8 * nf, 8 * nf, 3, 2)
        # top-down laterals
        self.lat2 = unit(2 * nf, 4 * nf, 1)
        self.lat3 = unit(4 * nf, 4 * nf, 1)
        self.lat4 = unit(8 * nf, 4 * nf, 1)
        self.lat5 = unit(8 * nf, 4 * nf, 1)
        # per-scale heads
        self.final2 = unit(4 * nf, 2 * nf, 3)
        self.final3 = unit(4 * nf, 2 * nf, 3)
        self.final4 = unit(4 * nf, 2 * nf, 3)
        self.tf = nn.Conv2d(2 * nf, 1, 1)
        self.seg = nn.Conv2d(2 * nf, 2 * nf, 1)
        self.embedding = nn.Conv2d(label_channels, 2 * nf, 1)

    @staticmethod
    def _up(x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor, segmap: torch.Tensor) -> FPSEOutput:
        """Score ``image`` [B,3,H,W] against ``segmap`` [B,L,H,W] (H, W multiples of 32)."""
        if image.shape[-2:] != segmap.shape[-2:]:
            raise ValueError(f"image {tuple(image.shape)} and segmap {tuple(segmap.shape)} "
                             "differ in size")
        f1 = self.enc1(image)  # [B,nf,H/2,W/2]
        f2 = self.enc2(f1)  # [B,2nf,H/4,W/4]
        f3 = self.enc3(f2)  # [B,4nf,H/8,W/8]
        f4 = self.enc4(f3)  # [B,8nf,H/16,W/16]
        f5 = self.enc5(f4)  # [B,8nf,H/32,W/32]
        t5 = self.lat5(f5)
        t4 = self._up(t5) + self.lat4(f4)
        t3 = self._up(t4) + self.lat3(f3)
        t2 = self._up(t3) + self.lat2(f2)
        heads = [self.final2(t2), self.final3(t3), self.final4(t4)]  # [B,2nf,H/4..16,...]

        emb = F.avg_pool2d(self.embedding(segmap), 2)  # [B,2nf,H/2,W/2]
        scores = []
        for h in heads:  # at H/4, H/8, H/16: halve the embedding for each
            emb = F.avg_pool2d(emb, 2)
            sem = (self.seg(h) * emb).sum(dim=1, keepdim=True)  # [B,1,h,w]
            scores.append(self.tf(h) + sem)
        return FPSEOutput([f2, f3, f4, f5], scores)


# ---------------------------------------------------------------------------- losses
def hinge_loss(scores: list[torch.Tensor], real: bool, for_discriminator: bool = True
               ) -> torch.Tensor:
    """Hinge adversarial loss averaged over the FPSE scales.

    Discriminator: ``mean(relu(1 - s))`` for real, ``mean(relu(1 + s))`` for fake;
    generator: ``-mean(s)``.
    """
    if not for_discriminator and not real:
        raise ValueError("the generator's hinge term targets 'real'")
    terms = []
    for s in scores:
        if not for_discriminator:
            terms.append(-s.mean())
        else:
            terms.append(F.relu(1 - s).mean() if real else F.relu(1 + s).mean())
    return torch.stack(terms).mean()


def feature_matching_loss(fake: list[torch.Tensor], real: list[torch.Tensor],
                          weight: float = 20.0) -> torch.Tensor:
    """``weight`` x mean over the features of ``L1(fake, real.detach())``."""
    terms = [F.l1_loss(f, r.detach()) for f, r in zip(fake, real, strict=True)]
    return weight * torch.stack(terms).mean()


def discriminator_for(generator: CCFPSEGenerator, ndf: int = 64, spectral: bool = True
                      ) -> FPSEDiscriminator:
    """An FPSE discriminator that embeds ``generator``'s semantic input."""
    channels = generator.label_nc + int(generator.dontcare) + int(generator.use_edges)
    return FPSEDiscriminator(channels, ndf=ndf, spectral=spectral)


# ------------------------------------------------------------------------- objective
@register_objective("ccfpse")
class CCFPSEObjective(Objective):
    """CC-FPSE training: FPSE discriminator, hinge, feature matching, VGG, and the VAE.

    Loss weights (the paper's training script and SPADE-derived options):

    * ``gan`` (1): hinge loss on the three FPSE scores, averaged;
    * ``fm`` (20, ``--lambda_feat 20``): feature matching on the discriminator's
      ``enc2..enc5`` features;
    * ``vgg`` (10): the VGG19 perceptual loss -- on in the paper; without
      ``perceptual_weights`` it is left out unless asked for;
    * ``kld`` (0.05): with a noise vector (``z_dim > 0``) the image encoder ``E`` is
      trained with the generator and ``z`` is encoded from the real photo (the paper's VAE
      mode); 0 trains from the prior's noise without an encoder.

    Discriminator arguments: ``ndf`` (64), ``spectral`` (True). Inputs must be multiples
    of 32 (the FPSE encoder's five stride-2 convs).
    """

    default_losses: ClassVar[dict[str, float]] = {"gan": 1.0, "fm": 20.0, "vgg": 10.0,
                                                  "kld": 0.05}
    default_discriminator: ClassVar[dict[str, Any]] = {"ndf": 64, "spectral": True}
    default_encoder: ClassVar[dict[str, Any]] = ENCODER_DEFAULTS

    def __init__(self, generator: SISGenerator, losses: dict[str, float],
                 discriminator: dict[str, Any], perceptual: nn.Module | None = None,
                 encoder: dict[str, Any] | None = None):
        super().__init__(generator, with_paper_vgg(losses, perceptual), discriminator,
                         perceptual, encoder)

    def build(self, generator: SISGenerator) -> None:
        """The FPSE discriminator, and the VAE encoder when ``z`` is used and ``kld > 0``."""
        self.d_nets["D"] = discriminator_for(generator, **self.d_args)
        if generator.z_dim > 0 and self.weights["kld"] > 0:
            self.g_nets["E"] = image_encoder(generator, **self.e_args)

    def _discriminate(self, seg: torch.Tensor, fake: torch.Tensor, real: torch.Tensor
                      ) -> tuple[FPSEOutput, FPSEOutput]:
        seg = seg.to(fake.dtype)
        return self.d_nets["D"](torch.cat([fake, real]), torch.cat([seg, seg])).split()

    @staticmethod
    def _semantics(G: SISGenerator, batch: Batch) -> torch.Tensor:
        return G.condition(batch["labels"], batch.get("edges") if G.use_edges else None)

    def generator_loss(self, G: SISGenerator, batch: Batch, noise: torch.Tensor | None
                       ) -> tuple[torch.Tensor, Terms, torch.Tensor]:
        """Hinge + feature matching (+ VGG) (+ KL of the encoder)."""
        w, real = self.weights, batch["image"]
        terms: Terms = {}
        if "E" in self.g_nets:
            noise, terms["g_kld"] = encode_style(self.g_nets["E"], real, lambda_kld=w["kld"])
        fake = G(batch["labels"], batch.get("edges") if G.use_edges else None, noise)
        d_fake, d_real = self._discriminate(self._semantics(G, batch), fake, real)
        terms["g_gan"] = w["gan"] * hinge_loss(d_fake.scores, True, for_discriminator=False)
        if w["fm"] > 0:
            terms["g_fm"] = feature_matching_loss(d_fake.features, d_real.features, w["fm"])
        if w["vgg"] > 0:
            terms["g_vgg"] = w["vgg"] * self.perceptual_loss(fake, real)
        return sum(terms.values()), terms, fake

    def discriminator_loss(self, G: SISGenerator, batch: Batch, fake: torch.Tensor
                           ) -> tuple[torch.Tensor, Terms]:
        """Hinge terms on the generated and the real images (one joint D batch)."""
        d_fake, d_real = self._discriminate(self._semantics(G, batch), fake, batch["image"])
        terms = {"d_fake": hinge_loss(d_fake.scores, False),
                 "d_real": hinge_loss(d_real.scores, True)}
        return terms["d_fake"] + terms["d_real"], terms
