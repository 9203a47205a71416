"""SESAME training parts: the two-stream discriminator and the generator/discriminator losses.

The SESAME discriminator (Ntavelis et al., ECCV 2020) keeps the semantics apart from the
image: a *semantic stream* reads the conditioning map (one-hot labels + hole channel), an
*image stream* reads the photo, both PatchGAN-shaped with the same widths. Before the image
stream's last conv its features ``x`` are modulated by the channel-sum of the semantic
features ``s``: ``x + x * sum_c(s)``, so the semantics decide how much each position's
image evidence counts. Two such discriminators run on an image pyramid.

Losses follow the official training: hinge GAN terms, discriminator feature matching
(weight 10) and a VGG19 perceptual loss (weight 10); the generated image is composited into
the real photo outside the hole before the discriminator sees it (the generator does this
itself with ``composite=True``). :class:`SESAMEObjective` trains ``sesame`` on holes drawn
by :func:`training_masks`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sisgen.models.base import SISGenerator
from sisgen.models.layers import maybe_sn

from .discriminator import Features, discriminate
from .losses import feature_matching_loss
from .objective import Batch, Objective, Terms, register_objective
from .perceptual import VGGLoss, with_paper_vgg


def _stream(in_channels: int, ndf: int, n_layers: int, max_channels: int, spectral: bool
            ) -> tuple[list[nn.Module], int]:
    """The stride-2 4x4 conv blocks of one stream (the last block has stride 1)."""
    blocks: list[nn.Module] = [nn.Sequential(
        nn.Conv2d(in_channels, ndf, 4, stride=2, padding=2), nn.LeakyReLU(0.2)
    )]
    nf = ndf
    for n in range(1, n_layers):
        nf_prev, nf = nf, min(nf * 2, max_channels)
        stride = 1 if n == n_layers - 1 else 2
        blocks.append(nn.Sequential(
            nn.Sequential(
                maybe_sn(nn.Conv2d(nf_prev, nf, 4, stride=stride, padding=2, bias=False),
                         spectral),
                nn.InstanceNorm2d(nf, affine=False),
            ),
            nn.LeakyReLU(0.2),
        ))
    return blocks, nf


class SESAMENLayerDiscriminator(nn.Module):
    """One SESAME PatchGAN with a semantic stream and an image stream.

    Args:
        semantic_nc: Channels of the conditioning map (the generator's ``semantic_nc``).
        ndf: Width of each stream's first conv (doubling per layer).
        n_layers: Conv blocks per stream (the image stream adds the 1-channel output conv).
        max_channels: Width cap of the streams.
        spectral: Spectral norm (+ instance norm) on the inner convs, as ``spectralinstance``.
    """

    def __init__(self, semantic_nc: int, ndf: int = 64, n_layers: int = 4,
                 max_channels: int = 512, spectral: bool = True):
        super().__init__()
        sem_blocks, _ = _stream(semantic_nc, ndf, n_layers, max_channels, spectral)
        img_blocks, nf = _stream(3, ndf, n_layers, max_channels, spectral)
        self.sem_sequence = nn.Sequential(*sem_blocks)
        img_blocks.append(nn.Sequential(nn.Conv2d(nf, 1, 4, stride=1, padding=2)))
        self.img_sequence = nn.ModuleList(img_blocks)

    @staticmethod
    def project(x: torch.Tensor, sem: torch.Tensor) -> torch.Tensor:
        """Modulate image features ``x`` [B,C,h,w] by the semantic features ``sem``.

        Returns:
            ``x + x * sum_c(sem)`` [B,C,h,w].
        """
        return x + x * sem.sum(1, keepdim=True)

    def forward(self, seg: torch.Tensor, image: torch.Tensor) -> list[torch.Tensor]:
        """The image stream's features and, last, the patch logits ``[B,1,h,w]``.

        Args:
            seg: ``[B,semantic_nc,H,W]`` conditioning map.
            image: ``[B,3,H,W]`` real or generated image.
        """
        sem = self.sem_sequence(seg)
        feats = []
        x = image
        for block in self.img_sequence[:-1]:
            x = block(x)
            feats.append(x)
        feats.append(self.img_sequence[-1](self.project(x, sem)))
        return feats


class SESAMEDiscriminator(nn.Module):
    """Multi-scale SESAME discriminator: ``num_d`` two-stream PatchGANs on an image pyramid.

    Args:
        semantic_nc: Channels of the conditioning map.
        num_d: Scales (each halves the input with a 3x3 average pool).
        ndf: Base width.
        n_layers: Blocks per stream.
        spectral: Spectral norm on the inner convs.
    """

    def __init__(self, semantic_nc: int, num_d: int = 2, ndf: int = 64, n_layers: int = 4,
                 spectral: bool = True):
        super().__init__()
        self.num_d = num_d
        for i in range(num_d):
            self.add_module(f"discriminator_{i}",
                            SESAMENLayerDiscriminator(semantic_nc, ndf, n_layers,
                                                      spectral=spectral))

    @staticmethod
    def downsample(x: torch.Tensor) -> torch.Tensor:
        """Halve ``x`` [B,C,H,W] with a 3x3 stride-2 average pool (padding excluded)."""
        return F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)

    def forward(self, seg: torch.Tensor, image: torch.Tensor) -> Features:
        """Per scale, the features of :class:`SESAMENLayerDiscriminator` (logits last)."""
        out = []
        for i in range(self.num_d):
            if i:
                seg, image = self.downsample(seg), self.downsample(image)
            out.append(getattr(self, f"discriminator_{i}")(seg, image))
        return out


def hinge_terms(pred: Features, real: bool, for_discriminator: bool = True) -> torch.Tensor:
    """The hinge GAN loss of the final logits, averaged over scales.

    Args:
        pred: Discriminator outputs per scale (logits last).
        real: Whether the target is "real".
        for_discriminator: D's terms ``relu(1 - x)`` / ``relu(1 + x)``; otherwise the
            generator's ``-x`` (target must be real).
    """
    if not for_discriminator:
        if not real:
            raise ValueError("the generator's hinge loss only targets 'real'")
        return sum(-p[-1].mean() for p in pred) / len(pred)
    sign = -1.0 if real else 1.0
    return sum(F.relu(1 + sign * p[-1]).mean() for p in pred) / len(pred)


class SESAMELoss:
    """Computes SESAME's generator and discriminator losses for one batch.

    Args:
        discriminator: A :class:`SESAMEDiscriminator` built with the generator's
            ``semantic_nc``.
        vgg_loss: The perceptual loss, or ``None`` to leave it out.
        lambda_feat: Weight of discriminator feature matching.
        lambda_vgg: Weight of the perceptual loss.
    """

    def __init__(self, discriminator: SESAMEDiscriminator, vgg_loss: VGGLoss | None = None,
                 lambda_feat: float = 10.0, lambda_vgg: float = 10.0):
        self.discriminator = discriminator
        self.vgg_loss = vgg_loss
        self.lambda_feat = lambda_feat
        self.lambda_vgg = lambda_vgg

    @staticmethod
    def generate(generator: nn.Module, labels: torch.Tensor, edges: torch.Tensor | None,
                 image: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The conditioning map and the edited image, composited into ``image``."""
        seg = generator.condition(labels, edges, mask)  # [B,semantic_nc,H,W]
        fake = generator(labels, edges, None, image, mask)
        if not generator.composite:
            hole = seg[:, -1:]
            fake = hole * fake + (1 - hole) * image
        return seg, fake

    def generator_loss(self, generator: nn.Module, labels: torch.Tensor,
                       edges: torch.Tensor | None, image: torch.Tensor, mask: torch.Tensor
                       ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """G's terms ``GAN``, ``GAN_Feat`` and (with a VGG loss) ``VGG``, and the fake image.

        Args:
            generator: A :class:`~sisgen.models.sesame.SESAMEGenerator`.
            labels: ``[B,H,W]`` labels.
            edges: ``[B,1,H,W]`` edges or ``None``.
            image: ``[B,3,H,W]`` real photo in [-1, 1].
            mask: ``[B,1,H,W]`` hole (1 = re-synthesize).
        """
        seg, fake = self.generate(generator, labels, edges, image, mask)
        pred_fake, pred_real = discriminate(self.discriminator, seg, fake, image)
        losses = {
            "GAN": hinge_terms(pred_fake, True, for_discriminator=False),
            "GAN_Feat": self.lambda_feat * feature_matching_loss(pred_real, pred_fake),
        }
        if self.vgg_loss is not None:
            losses["VGG"] = self.lambda_vgg * self.vgg_loss(fake, image)
        return losses, fake

    def discriminator_loss(self, generator: nn.Module, labels: torch.Tensor,
                           edges: torch.Tensor | None, image: torch.Tensor, mask: torch.Tensor
                           ) -> dict[str, torch.Tensor]:
        """D's hinge terms ``D_Fake`` and ``D_real`` (the generator is not differentiated)."""
        with torch.no_grad():
            seg, fake = self.generate(generator, labels, edges, image, mask)
        pred_fake, pred_real = discriminate(self.discriminator, seg, fake.detach(), image)
        return {"D_Fake": hinge_terms(pred_fake, False), "D_real": hinge_terms(pred_real, True)}


# ------------------------------------------------------------------------- objective
def training_masks(instances: torch.Tensor, box_prob: float = 0.5) -> torch.Tensor:
    """SESAME's training holes ``[B,1,H,W]`` (1 = re-synthesize), one rectangle per image.

    With probability ``box_prob`` -- or when the image has no instance -- a random box
    whose sides are a quarter to a half of the image's; otherwise the bounding box of one
    instance of ``instances`` (ids > 0) drawn at random. Every draw uses torch's global
    random generator, so a resumed run draws the same holes.

    Args:
        instances: ``[B,H,W]`` instance ids, 0 = none.
        box_prob: Probability of a random box even when instances exist.
    """
    b, h, w = instances.shape
    mask = torch.zeros(b, 1, h, w)
    inst = instances.cpu()
    for i in range(b):
        ids = torch.unique(inst[i])
        ids = ids[ids > 0]
        if len(ids) == 0 or float(torch.rand(())) < box_prob:
            bh = int(torch.randint(h // 4, h // 2 + 1, ()))
            bw = int(torch.randint(w // 4, w // 2 + 1, ()))
            y0 = int(torch.randint(0, h - bh + 1, ()))
            x0 = int(torch.randint(0, w - bw + 1, ()))
            y1, x1 = y0 + bh, x0 + bw
        else:
            pick = ids[int(torch.randint(0, len(ids), ()))]
            ys, xs = torch.nonzero(inst[i] == pick, as_tuple=True)
            y0, y1 = int(ys.min()), int(ys.max()) + 1
            x0, x1 = int(xs.min()), int(xs.max()) + 1
        mask[i, 0, y0:y1, x0:x1] = 1.0
    return mask.to(instances.device)


def centre_box(batch: int, height: int, width: int) -> torch.Tensor:
    """A fixed hole ``[B,1,H,W]``: the central half of each side (for sample grids)."""
    mask = torch.zeros(batch, 1, height, width)
    mask[..., height // 4: height - height // 4, width // 4: width - width // 4] = 1.0
    return mask


@register_objective("sesame")
class SESAMEObjective(Objective):
    """SESAME training: inpainting a hole from the label map, two-stream discriminator.

    Every step draws one hole per image (:func:`training_masks`: a random box, or an
    instance's bounding box from ``batch["instances"]``); the generator re-synthesizes it
    and its output is pasted into the real photo before D sees it. Loss weights (official
    options): ``gan`` (1, hinge), ``fm`` (10, ``--lambda_feat``) and ``vgg`` (10,
    ``--lambda_vgg``; on in the paper -- without ``perceptual_weights`` it is left out
    unless asked for). Discriminator arguments: ``num_d`` (2), ``ndf`` (64), ``n_layers``
    (4), ``spectral`` (True). Sample grids fill a fixed central box (:func:`centre_box`).
    """

    default_losses: ClassVar[dict[str, float]] = {"gan": 1.0, "fm": 10.0, "vgg": 10.0}
    default_discriminator: ClassVar[dict[str, Any]] = {"num_d": 2, "ndf": 64, "n_layers": 4,
                                                       "spectral": True}
    #: Probability of a random box instead of an instance's bounding box.
    box_prob = 0.5

    def __init__(self, generator: SISGenerator, losses: dict[str, float],
                 discriminator: dict[str, Any], perceptual: nn.Module | None = None,
                 encoder: dict[str, Any] | None = None):
        super().__init__(generator, with_paper_vgg(losses, perceptual), discriminator,
                         perceptual, encoder)
        self._mask: torch.Tensor | None = None

    def build(self, generator: SISGenerator) -> None:
        """The two-stream multi-scale discriminator."""
        self.d_nets["D"] = SESAMEDiscriminator(generator.semantic_nc, **self.d_args)

    def _criterion(self) -> SESAMELoss:
        w = self.weights
        return SESAMELoss(self.d_nets["D"], lambda_feat=w["fm"], lambda_vgg=w["vgg"])

    @staticmethod
    def _edges(G: SISGenerator, batch: Batch) -> torch.Tensor | None:
        return batch.get("edges") if G.use_edges else None

    def generator_loss(self, G: SISGenerator, batch: Batch, noise: torch.Tensor | None
                       ) -> tuple[torch.Tensor, Terms, torch.Tensor]:
        """Hinge + feature matching (+ VGG) on the composited image of a fresh hole."""
        w, real = self.weights, batch["image"]
        mask = training_masks(batch["instances"], self.box_prob).to(real.dtype)
        crit = self._criterion()
        seg, fake = crit.generate(G, batch["labels"], self._edges(G, batch), real, mask)
        pred_fake, pred_real = discriminate(crit.discriminator, seg.to(fake.dtype), fake, real)
        terms: Terms = {"g_gan": w["gan"] * hinge_terms(pred_fake, True,
                                                        for_discriminator=False)}
        if w["fm"] > 0:
            terms["g_fm"] = w["fm"] * feature_matching_loss(pred_real, pred_fake)
        if w["vgg"] > 0:
            terms["g_vgg"] = w["vgg"] * self.perceptual_loss(fake, real)
        self._mask = mask
        return sum(terms.values()), terms, fake

    def discriminator_loss(self, G: SISGenerator, batch: Batch, fake: torch.Tensor
                           ) -> tuple[torch.Tensor, Terms]:
        """Hinge terms; the hole is the generator step's (a new one when called alone)."""
        mask, self._mask = self._mask, None
        real = batch["image"]
        edges = self._edges(G, batch)
        if mask is None or mask.shape[0] != fake.shape[0]:
            mask = training_masks(batch["instances"], self.box_prob).to(real.dtype)
            with torch.no_grad():
                _, fake = SESAMELoss.generate(G, batch["labels"], edges, real, mask)
        seg = G.condition(batch["labels"], edges, mask).to(fake.dtype)
        pred_fake, pred_real = discriminate(self.d_nets["D"], seg, fake.detach(), real)
        terms = {"d_fake": hinge_terms(pred_fake, False), "d_real": hinge_terms(pred_real, True)}
        return terms["d_fake"] + terms["d_real"], terms

    def sample(self, G: SISGenerator, batch: Batch, noise: torch.Tensor | None
               ) -> torch.Tensor:
        """The batch's photos with their central box re-synthesized."""
        real = batch["image"]
        mask = centre_box(real.shape[0], *real.shape[-2:]).to(real)
        return G(batch["labels"], self._edges(G, batch), None, real, mask)
