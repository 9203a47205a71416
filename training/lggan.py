"""LGGAN training pieces: the class-feature classifier and the LGGAN loss terms.

LGGAN trains with the SPADE multi-scale discriminator (:mod:`sisgen.training.discriminator`)
and its hinge / feature-matching losses, applied to all three generator results -- the
fused image, the global (SPADE) image and the local image. On top of that it defines

* a **classification loss**: each class-specific sub-generator's masked feature map,
  global-average-pooled, must be recognized as its class by a linear head (``fc2`` in the
  official code); classes absent from a sample do not count;
* a **local pixel loss**: each sub-generator's image is pulled towards the real image
  restricted to its class mask (L1);
* optionally an image L1 loss on the three results (the official training scripts turn it
  off with ``--no_l1_loss``) and a perceptual (VGG) loss, given as a callable.

:class:`LGGANObjective` trains ``lggan`` with them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sisgen.models.base import SISGenerator
from sisgen.models.lggan import LGGANGenerator, LGGANOutputs

from .discriminator import MultiScaleDiscriminator, discriminate
from .losses import feature_matching_loss, hinge_g_loss
from .objective import Batch, Objective, Terms, condition_map, register_objective
from .perceptual import with_paper_vgg


class LGGANClassifier(nn.Module):
    """The linear head classifying pooled class-specific features (official ``fc2``).

    Args:
        in_features: Width of the shared local feature (the generator's ``ngf``).
        num_classes: Classes to score (the generator's ``num_classifier_classes``).
    """

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        self.num_classes = num_classes
        self.fc2 = nn.Linear(in_features, num_classes)

    @classmethod
    def for_generator(cls, generator: LGGANGenerator) -> LGGANClassifier:
        """The head matching ``generator``'s feature width and local classes."""
        return cls(generator.ngf, generator.num_classifier_classes)

    def forward(self, class_features: torch.Tensor) -> torch.Tensor:
        """Score the pooled class features.

        Args:
            class_features: ``[B,K,F]``; a merged last group, if any, is dropped.

        Returns:
            ``[B,C,C]`` logits: row k scores sub-generator k's feature over C classes.
        """
        return self.fc2(class_features[:, : self.num_classes])


def class_presence(masks: torch.Tensor) -> torch.Tensor:
    """``[B,K]`` float: 1 where class k has at least one pixel in sample b (``masks`` [B,K,H,W])."""
    return (masks.flatten(2).sum(dim=2) > 0).to(masks.dtype)


def class_loss(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each class feature against its own class, over present classes.

    Args:
        scores: ``[B,C,C]`` logits, row k for class k's feature.
        valid: ``[B,C]`` weights (1 = the class is present in the sample).

    Returns:
        ``sum(CE * valid) / sum(valid)`` (0 when no class is present).
    """
    b, c, _ = scores.shape
    target = torch.arange(c, device=scores.device).repeat(b)  # [B*C]
    ce = F.cross_entropy(scores.reshape(b * c, c), target, reduction="none")
    w = valid.reshape(b * c).to(ce.dtype)
    return (ce * w).sum() / w.sum().clamp(min=1.0)


def local_l1_loss(class_images: torch.Tensor, masks: torch.Tensor, real: torch.Tensor
                  ) -> torch.Tensor:
    """Sum over sub-generators of ``mean |image_k - real * mask_k|``.

    Args:
        class_images: ``[B,K,3,H,W]`` the sub-generators' images.
        masks: ``[B,K,H,W]`` their class masks.
        real: ``[B,3,H,W]`` the real image.
    """
    target = real.unsqueeze(1) * masks.unsqueeze(2)  # [B,K,3,H,W]
    return (class_images - target).abs().mean(dim=(0, 2, 3, 4)).sum()


def lggan_generator_losses(
    out: LGGANOutputs,
    real: torch.Tensor,
    seg: torch.Tensor,
    discriminator: nn.Module,
    classifier: LGGANClassifier,
    *,
    vgg_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    lambda_feat: float = 10.0,
    lambda_vgg: float = 10.0,
    lambda_l1: float = 1.0,
    lambda_class: float = 1.0,
    image_l1: bool = False,
    local_l1: bool = True,
) -> dict[str, torch.Tensor]:
    """The LGGAN generator objective, term by term (sum the values for the total).

    Adversarial, feature-matching, VGG and image-L1 terms are each summed over the fused,
    global and local images, as in the paper.

    Args:
        out: :meth:`LGGANGenerator.forward_all`'s result.
        real: ``[B,3,H,W]`` real images in [-1, 1].
        seg: ``[B,S,H,W]`` the conditioning map D sees (:meth:`LGGANGenerator.condition`).
        discriminator: A multi-scale discriminator ``D(seg, image) -> features``.
        classifier: The class-feature head.
        vgg_loss: Perceptual loss ``(fake, real) -> scalar``; ``None`` leaves it out.
        lambda_feat: Weight of feature matching.
        lambda_vgg: Weight of the VGG loss.
        lambda_l1: Weight of the image and local L1 losses.
        lambda_class: Weight of the classification loss.
        image_l1: Add the image L1 loss (off in the official runs).
        local_l1: Add the class-wise local L1 loss.

    Returns:
        ``GAN``, ``GAN_Feat``, ``class`` and, when enabled, ``VGG``, ``L1``, ``L1_Local``.
    """
    images = (out.image, out.global_image, out.local_image)
    gan = torch.zeros((), device=real.device)
    feat = torch.zeros((), device=real.device)
    for img in images:
        fake_feats, real_feats = discriminate(discriminator, seg, img, real)
        gan = gan + hinge_g_loss(fake_feats)
        feat = feat + feature_matching_loss(real_feats, fake_feats)
    losses = {"GAN": gan, "GAN_Feat": feat * lambda_feat}
    if vgg_loss is not None:
        losses["VGG"] = sum(vgg_loss(img, real) for img in images) * lambda_vgg
    if image_l1:
        losses["L1"] = sum(F.l1_loss(img, real) for img in images) * lambda_l1
    scores = classifier(out.class_features)
    valid = class_presence(out.class_masks[:, : classifier.num_classes])
    losses["class"] = class_loss(scores, valid) * lambda_class
    if local_l1:
        losses["L1_Local"] = local_l1_loss(out.class_images, out.class_masks, real) * lambda_l1
    return losses


def lggan_discriminator_losses(out: LGGANOutputs, real: torch.Tensor, seg: torch.Tensor,
                               discriminator: nn.Module) -> dict[str, torch.Tensor]:
    """Hinge losses of D on the fused, global and local images (all detached) vs real.

    Returns:
        ``D_Fake`` and ``D_real``, each summed over the three generator results.
    """
    d_fake = torch.zeros((), device=real.device)
    d_real = torch.zeros((), device=real.device)
    for img in (out.image, out.global_image, out.local_image):
        fake_feats, real_feats = discriminate(discriminator, seg, img.detach(), real)
        d_fake = d_fake + sum(F.relu(1 + f[-1]).mean() for f in fake_feats) / len(fake_feats)
        d_real = d_real + sum(F.relu(1 - r[-1]).mean() for r in real_feats) / len(real_feats)
    return {"D_Fake": d_fake, "D_real": d_real}


@register_objective("lggan")
class LGGANObjective(Objective):
    """LGGAN training: SPADE's multi-scale PatchGAN on the fused, global and local images.

    Loss weights (official ``train_options.py`` and training scripts):

    * ``gan`` (1) and ``fm`` (10): hinge and feature-matching terms, each summed over the
      three generator results;
    * ``vgg`` (10): the perceptual loss on the three results -- on in the paper; without
      ``perceptual_weights`` it is left out unless asked for;
    * ``class`` (1): the classification loss of the class-specific features (its linear
      head ``C`` trains with the generator);
    * ``l1_local`` (1): the class-wise local pixel loss;
    * ``l1`` (0): the image L1 loss (``--lambda_l1 1``, switched off by ``--no_l1_loss`` in
      the released scripts).

    D's hinge terms are summed over the three results too. Discriminator arguments:
    ``num_d`` (2), ``ndf`` (64), ``n_layers`` (4), ``spectral`` (True).
    """

    default_losses: ClassVar[dict[str, float]] = {"gan": 1.0, "fm": 10.0, "vgg": 10.0,
                                                  "class": 1.0, "l1_local": 1.0, "l1": 0.0}
    default_discriminator: ClassVar[dict[str, Any]] = {"num_d": 2, "ndf": 64, "n_layers": 4,
                                                       "spectral": True}

    def __init__(self, generator: SISGenerator, losses: dict[str, float],
                 discriminator: dict[str, Any], perceptual: nn.Module | None = None,
                 encoder: dict[str, Any] | None = None):
        super().__init__(generator, with_paper_vgg(losses, perceptual), discriminator,
                         perceptual, encoder)
        self._outputs: LGGANOutputs | None = None

    def build(self, generator: SISGenerator) -> None:
        """The multi-scale discriminator and the class-feature classifier."""
        seg_nc = condition_map(generator, *generator.example_inputs(1)[:2]).shape[1]
        self.d_nets["D"] = MultiScaleDiscriminator(seg_nc + 3, **self.d_args)
        self.g_nets["C"] = LGGANClassifier.for_generator(generator)

    @staticmethod
    def _seg(G: SISGenerator, batch: Batch) -> torch.Tensor:
        return G.condition(batch["labels"], batch.get("edges") if G.use_edges else None)

    def generator_loss(self, G: SISGenerator, batch: Batch, noise: torch.Tensor | None
                       ) -> tuple[torch.Tensor, Terms, torch.Tensor]:
        """The LGGAN generator objective; keeps the global and local images for D's step."""
        w = self.weights
        out = G.forward_all(batch["labels"], batch.get("edges") if G.use_edges else None)
        seg = self._seg(G, batch).to(out.image.dtype)
        parts = lggan_generator_losses(
            out, batch["image"], seg, self.d_nets["D"], self.g_nets["C"],
            vgg_loss=self.perceptual_loss if w["vgg"] > 0 else None, lambda_feat=w["fm"],
            lambda_vgg=w["vgg"], lambda_l1=1.0, lambda_class=w["class"],
            image_l1=w["l1"] > 0, local_l1=w["l1_local"] > 0)
        names = {"GAN": ("g_gan", w["gan"]), "GAN_Feat": ("g_fm", 1.0), "VGG": ("g_vgg", 1.0),
                 "class": ("g_class", 1.0), "L1": ("g_l1", w["l1"]),
                 "L1_Local": ("g_l1_local", w["l1_local"])}
        terms: Terms = {names[k][0]: names[k][1] * v for k, v in parts.items()}
        self._outputs = LGGANOutputs(**{k: v.detach() for k, v in vars(out).items()})
        return sum(terms.values()), terms, out.image

    def discriminator_loss(self, G: SISGenerator, batch: Batch, fake: torch.Tensor
                           ) -> tuple[torch.Tensor, Terms]:
        """Hinge terms of the fused, global and local images (regenerated when not kept)."""
        out = self._outputs
        self._outputs = None
        if out is None or out.image.shape != fake.shape:
            with torch.no_grad():
                out = G.forward_all(batch["labels"],
                                    batch.get("edges") if G.use_edges else None)
        out = LGGANOutputs(**{**vars(out), "image": fake})
        parts = lggan_discriminator_losses(out, batch["image"],
                                           self._seg(G, batch).to(fake.dtype), self.d_nets["D"])
        terms = {"d_fake": parts["D_Fake"], "d_real": parts["D_real"]}
        return terms["d_fake"] + terms["d_real"], terms


__all__ = [
    "LGGANClassifier",
    "LGGANObjective",
    "class_loss",
    "class_presence",
    "lggan_discriminator_losses",
    "lggan_generator_losses",
    "local_l1_loss",
]
