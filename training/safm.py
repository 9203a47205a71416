"""SAFM training parts: the segmentation network and the class-balanced segmentation loss.

SAFM (Lv et al., CVPR 2022) trains on top of SPADE's objectives -- hinge GAN terms on a
multi-scale PatchGAN (:class:`~sisgen.training.discriminator.MultiScaleDiscriminator`),
discriminator feature matching (weight 10) and a VGG19 perceptual loss (weight 10) -- and
adds a segmentation network trained *with the generator* (its parameters sit in the
generator's optimizer in the official code):

* ``Real_seg``: the segmenter on the (detached) real image, against the label map;
* ``Fake_seg``: the segmenter on the generated image (so it also trains the generator),
  switched on only after ``segepoch`` epochs (``epoch > segepoch``).

Both are per-pixel cross-entropies weighted by the batch's inverse label frequencies
(:func:`class_balance_weights`) and enter the generator's loss with weight 1.

* :class:`SAFMSegNet` -- the official segmenter (``models/networks/segnet.py``): the OASIS
  U-Net layout, six residual down-blocks (3 -> 128, 128, 256, 256, 512, 512) and six
  up-blocks with skips, ending at 64 channels and a 1x1 conv to ``label_nc (+ dontcare)``
  logits. It is defined in the official repository and trained from scratch (no
  pretrained weights); :class:`SAFMLoss` accepts any module mapping ``[B,3,H,W]`` images to
  ``[B,C,H,W]`` logits in its place.
* :func:`class_balance_weights` / :func:`class_balanced_cross_entropy` -- the official
  ``get_class_balancing`` weights and the weighted CE.
* :class:`SAFMLoss` -- generator and discriminator objectives put together.
* :class:`SAFMObjective` -- the trainer's objective for ``safm``.

Labels are the compact ``[B,H,W]`` ids; the one-hot map is the generator's
(:meth:`~sisgen.models.base.SISGenerator.onehot`, dontcare channel last, as in the official
loaders, which move "unknown" -- 255, or 0 on ADE20K -- to channel ``label_nc``).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from sisgen.models.base import SISGenerator

from .discriminator import Features, MultiScaleDiscriminator, discriminate
from .losses import feature_matching_loss, hinge_g_loss
from .oasis import OASISDiscriminator, init_oasis_weights
from .objective import Batch, Objective, Terms, register_objective
from .perceptual import with_paper_vgg

#: Official ``--segepoch`` per dataset (``Fake_seg`` starts once ``epoch > segepoch``);
#: the option's own default is 50.
SEGEPOCH: dict[str, int] = {"cityscapes": 60, "ade20k": 100, "coco_stuff": 100}
DEFAULT_SEGEPOCH = 50


# ---------------------------------------------------------------------------- network


class SAFMSegNet(OASISDiscriminator):
    """The segmentation network SAFM trains alongside the generator.

    The OASIS discriminator's U-Net of spectral-normalized residual blocks
    (:class:`~sisgen.training.oasis.OASISDiscriminator`) with ``num_classes`` outputs instead
    of N+1: the encoder halves the resolution per
    block, the decoder doubles it, reading the concatenation of the encoder feature of the
    same size and its previous output; a plain 1x1 conv gives the class logits. Official
    widths (``ndf=64``): 3 -> 128, 128, 256, 256, 512, 512, decoder back to 64.

    Args:
        num_classes: Output logits: ``label_nc``, plus one with a dontcare channel.
        num_res_blocks: Encoder (and decoder) blocks (official 6; at most 6).
        ndf: Width unit (official 64).
        spectral: Spectral-normalize the block convs (official: yes).
        in_channels: Image channels.
        init: Apply the official initialization (Xavier-normal, gain 0.02, zero bias).
    """

    def __init__(self, num_classes: int, num_res_blocks: int = 6, ndf: int = 64,
                 spectral: bool = True, in_channels: int = 3, init: bool = True):
        super().__init__(num_classes, num_res_blocks, ndf, spectral, in_channels,
                         out_channels=num_classes)
        self.num_classes = num_classes
        if init:
            init_oasis_weights(self)


# ----------------------------------------------------------------------------- losses


def class_balance_weights(onehot: torch.Tensor, dontcare_index: int | None = -1
                          ) -> torch.Tensor:
    """Per-pixel weights ``[B,H,W]`` from the batch's label frequencies (official formula).

    ``coef_c = numel(label) / (K * C) / n_c = P / (K * n_c)``: P pixels in the batch,
    ``n_c`` of them of class c, K classes present, C channels. The dontcare channel counts
    as absent (not in K) and its coefficient is 0. A pixel takes the coefficient of its
    ``argmax`` channel; pixels with an all-zero one-hot vector weigh 0 here (the official
    code would give them channel 0's weight; its loaders never produce them).

    The official code zeroes channel ``-1``, except on ADE20K where it zeroes channel 0 --
    although its ADE20K loader, too, moves "unknown" to the last channel, so there class 0
    (wall) is what gets weight 0. Pass ``dontcare_index=0`` to reproduce that.

    Args:
        onehot: One-hot labels ``[B,C,H,W]``.
        dontcare_index: The channel to exclude (negative indices count from the end), or
            ``None`` when there is no dontcare channel.

    Returns:
        The weight map ``[B,H,W]``.
    """
    counts = onehot.sum(dim=(0, 2, 3))  # [C]
    if dontcare_index is not None:
        keep = torch.ones_like(counts)
        keep[dontcare_index] = 0
        counts = counts * keep
    present = (counts > 0).sum().clamp(min=1)
    pixels = onehot.shape[0] * onehot.shape[2] * onehot.shape[3]
    coef = torch.where(counts > 0, pixels / (present * counts.clamp(min=1)),
                       torch.zeros_like(counts))
    weights = coef[onehot.argmax(dim=1)]
    return weights * (onehot.sum(dim=1) > 0).to(weights.dtype)


def class_balanced_cross_entropy(logits: torch.Tensor, onehot: torch.Tensor,
                                 dontcare_index: int | None = -1,
                                 weights: torch.Tensor | None = None) -> torch.Tensor:
    """``mean(w * CE(logits, argmax(onehot)))`` over all pixels (SAFM's seg loss).

    Args:
        logits: Segmenter output ``[B,C,H,W]``.
        onehot: One-hot labels ``[B,C,H,W]`` (the target is their argmax).
        dontcare_index: See :func:`class_balance_weights`.
        weights: Precomputed ``[B,H,W]`` weights (default: computed from ``onehot``).

    Returns:
        The scalar loss (the mean runs over every pixel, weight-0 ones included).
    """
    if weights is None:
        weights = class_balance_weights(onehot, dontcare_index)
    target = onehot.argmax(dim=1)
    ce = F.cross_entropy(logits, target, reduction="none")  # [B,H,W]
    return (weights.detach() * ce).mean()


class SAFMLoss:
    """SAFM's generator and discriminator objectives for one batch.

    The discriminator sees ``concat(one-hot labels [+ dontcare] [+ edges], image)`` -- the
    conditioning map without the 72 shape-descriptor channels -- with fake and real in one
    batch. Official weights: ``lambda_feat = lambda_vgg = 10``, both seg terms 1.

    Args:
        discriminator: A multi-scale discriminator called as ``D(seg, image)`` that returns
            features per scale (e.g. :class:`~sisgen.training.discriminator.
            MultiScaleDiscriminator` with ``seg_channels + 3`` inputs).
        segnet: The segmenter (:class:`SAFMSegNet`, or any ``[B,3,H,W] -> [B,C,H,W]``
            module with C = the one-hot's channels). Train it with the generator's optimizer.
        vgg_loss: The perceptual loss ``vgg_loss(fake, real)``, or ``None`` to leave it out.
        lambda_feat: Weight of discriminator feature matching.
        lambda_vgg: Weight of the perceptual loss.
        lambda_seg_real: Weight of ``Real_seg``.
        lambda_seg_fake: Weight of ``Fake_seg``.
        segepoch: ``Fake_seg`` is added once ``epoch > segepoch`` (see :data:`SEGEPOCH`).
        dontcare_index: The one-hot channel with zero seg weight; ``"auto"``: the last
            channel when the generator has a dontcare channel, else none.
    """

    def __init__(self, discriminator: nn.Module, segnet: nn.Module,
                 vgg_loss: nn.Module | None = None, lambda_feat: float = 10.0,
                 lambda_vgg: float = 10.0, lambda_seg_real: float = 1.0,
                 lambda_seg_fake: float = 1.0, segepoch: int = DEFAULT_SEGEPOCH,
                 dontcare_index: int | Literal["auto"] | None = "auto"):
        self.discriminator = discriminator
        self.segnet = segnet
        self.vgg_loss = vgg_loss
        self.lambda_feat = lambda_feat
        self.lambda_vgg = lambda_vgg
        self.lambda_seg_real = lambda_seg_real
        self.lambda_seg_fake = lambda_seg_fake
        self.segepoch = segepoch
        self.dontcare_index = dontcare_index

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def semantics(generator: SISGenerator, labels: torch.Tensor, edges: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor]:
        """The one-hot labels ``[B,C,H,W]`` and D's conditioning map (one-hot + edges).

        Both from the generator's :meth:`~sisgen.models.base.SISGenerator.condition`: the
        one-hot part is a view of the map, not a second one-hot.
        """
        seg = generator.condition(labels, edges)
        return seg[:, : seg.shape[1] - int(generator.use_edges)], seg

    def _dontcare(self, generator: nn.Module) -> int | None:
        if self.dontcare_index == "auto":
            return -1 if generator.dontcare else None
        return self.dontcare_index

    def fake_seg_active(self, epoch: int) -> bool:
        """Whether ``Fake_seg`` is part of the generator loss at ``epoch``."""
        return epoch > self.segepoch

    # ---------------------------------------------------------------- objectives
    def generator_loss(self, generator: nn.Module, labels: torch.Tensor,
                       edges: torch.Tensor | None, real: torch.Tensor, epoch: int,
                       instances: torch.Tensor | None = None
                       ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """G's terms and the fake image (minimize the sum with G's + the segmenter's optimizer).

        Terms: ``GAN``, ``GAN_Feat``, ``VGG`` (with a VGG loss), ``Real_seg`` and, once
        ``epoch > segepoch``, ``Fake_seg``; each already weighted.

        Args:
            generator: A :class:`~sisgen.models.safm.SAFMGenerator`.
            labels: ``[B,H,W]`` class ids.
            edges: ``[B,1,H,W]`` instance edges, or ``None`` without edges.
            real: ``[B,3,H,W]`` real images in [-1, 1].
            epoch: The current epoch (official epochs count from 1).
            instances: Instance ids for the shape descriptor (see the generator).
        """
        onehot, seg = self.semantics(generator, labels, edges)
        fake = generator(labels, edges, None, instances)
        pred_fake, pred_real = discriminate(self.discriminator, seg, fake, real)
        losses = {
            "GAN": hinge_g_loss(pred_fake),
            "GAN_Feat": self.lambda_feat * feature_matching_loss(pred_real, pred_fake),
        }
        if self.vgg_loss is not None:
            losses["VGG"] = self.lambda_vgg * self.vgg_loss(fake, real)
        weights = class_balance_weights(onehot, self._dontcare(generator)).detach()
        losses["Real_seg"] = self.lambda_seg_real * class_balanced_cross_entropy(
            self.segnet(real.detach()), onehot, weights=weights)
        if self.fake_seg_active(epoch):
            losses["Fake_seg"] = self.lambda_seg_fake * class_balanced_cross_entropy(
                self.segnet(fake), onehot, weights=weights)
        return losses, fake

    def discriminator_loss(self, generator: nn.Module, labels: torch.Tensor,
                           edges: torch.Tensor | None, real: torch.Tensor,
                           instances: torch.Tensor | None = None,
                           fake: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """D's hinge terms ``D_Fake`` and ``D_real``.

        Args:
            generator: The generator (run without gradients unless ``fake`` is given; the
                official step regenerates the fake after the generator's update).
            labels: ``[B,H,W]`` class ids.
            edges: ``[B,1,H,W]`` edges or ``None``.
            real: ``[B,3,H,W]`` real images.
            instances: Instance ids for the shape descriptor.
            fake: A fake image to reuse (detached here).
        """
        _, seg = self.semantics(generator, labels, edges)
        if fake is None:
            with torch.no_grad():
                fake = generator(labels, edges, None, instances)
        pred_fake, pred_real = discriminate(self.discriminator, seg, fake.detach(), real)
        return {"D_Fake": _hinge_fake(pred_fake), "D_real": _hinge_real(pred_real)}


def _hinge_real(pred: Features) -> torch.Tensor:
    """The real half of :func:`~sisgen.training.losses.hinge_d_loss`, kept apart to report it.

    ``mean(relu(1 - D(real)))``, averaged over scales.
    """
    return sum(F.relu(1 - p[-1]).mean() for p in pred) / len(pred)  # type: ignore[return-value]


def _hinge_fake(pred: Features) -> torch.Tensor:
    """``mean(relu(1 + D(fake)))``, averaged over scales (the fake half)."""
    return sum(F.relu(1 + p[-1]).mean() for p in pred) / len(pred)  # type: ignore[return-value]


# ------------------------------------------------------------------------- objective


@register_objective("safm")
class SAFMObjective(Objective):
    """SAFM training: SPADE's objectives plus the segmenter trained with the generator.

    Loss weights (official options): ``gan`` (1, hinge), ``fm`` (10), ``vgg`` (10; on in
    the paper -- without ``perceptual_weights`` it is left out unless asked for),
    ``seg_real`` (1) and ``seg_fake`` (1) for the class-balanced segmentation terms, and
    ``seg_fake_start_epoch``: ``Fake_seg`` joins once the (1-based) epoch exceeds it
    (official ``--segepoch``: 60 Cityscapes, 100 ADE20K / COCO-Stuff, else 50). The
    trainer sets :attr:`epoch` (0-based) before each step.

    Network arguments (``discriminator``): the multi-scale PatchGAN's ``num_d`` (2),
    ``ndf`` (64), ``n_layers`` (4), ``spectral`` (True), and the segmenter's
    ``segnet_ndf`` (64) and ``segnet_blocks`` (6; inputs must be multiples of
    ``2**segnet_blocks``).
    """

    default_losses: ClassVar[dict[str, float]] = {
        "gan": 1.0, "fm": 10.0, "vgg": 10.0, "seg_real": 1.0, "seg_fake": 1.0,
        "seg_fake_start_epoch": float(DEFAULT_SEGEPOCH)}
    default_discriminator: ClassVar[dict[str, Any]] = {
        "num_d": 2, "ndf": 64, "n_layers": 4, "spectral": True, "segnet_ndf": 64,
        "segnet_blocks": 6}
    #: The current epoch, counted from 0 (set by the trainer).
    epoch: int = 0

    def __init__(self, generator: SISGenerator, losses: dict[str, float],
                 discriminator: dict[str, Any], perceptual: nn.Module | None = None,
                 encoder: dict[str, Any] | None = None):
        losses = with_paper_vgg(losses, perceptual)
        if "seg_fake_start_epoch" not in losses:
            name = generator.vocabulary.name if generator.vocabulary is not None else ""
            losses["seg_fake_start_epoch"] = float(SEGEPOCH.get(name, DEFAULT_SEGEPOCH))
        super().__init__(generator, losses, discriminator, perceptual, encoder)

    def build(self, generator: SISGenerator) -> None:
        """The multi-scale PatchGAN on ``(one-hot [+ edges], image)`` and the segmenter."""
        a = dict(self.d_args)
        seg_ndf, seg_blocks = a.pop("segnet_ndf"), a.pop("segnet_blocks")
        example = generator.example_inputs(1)
        onehot, seg = SAFMLoss.semantics(generator, example[0], example[1])
        self.d_nets["D"] = MultiScaleDiscriminator(seg.shape[1] + 3, **a)
        self.g_nets["S"] = SAFMSegNet(onehot.shape[1], num_res_blocks=seg_blocks, ndf=seg_ndf)

    def _criterion(self) -> SAFMLoss:
        w = self.weights
        return SAFMLoss(self.d_nets["D"], self.g_nets["S"],
                        vgg_loss=self.perceptual_loss if w["vgg"] > 0 else None,
                        lambda_feat=w["fm"], lambda_vgg=w["vgg"], lambda_seg_real=w["seg_real"],
                        lambda_seg_fake=w["seg_fake"],
                        segepoch=int(w["seg_fake_start_epoch"]))

    @staticmethod
    def _edges(G: SISGenerator, batch: Batch) -> torch.Tensor | None:
        return batch.get("edges") if G.use_edges else None

    def generator_loss(self, G: SISGenerator, batch: Batch, noise: torch.Tensor | None
                       ) -> tuple[torch.Tensor, Terms, torch.Tensor]:
        """Hinge, FM (+ VGG), ``Real_seg`` and, after the start epoch, ``Fake_seg``."""
        parts, fake = self._criterion().generator_loss(
            G, batch["labels"], self._edges(G, batch), batch["image"], self.epoch + 1,
            batch.get("instances"))
        names = {"GAN": "g_gan", "GAN_Feat": "g_fm", "VGG": "g_vgg", "Real_seg": "g_seg_real",
                 "Fake_seg": "g_seg_fake"}
        terms: Terms = {names[k]: v for k, v in parts.items()}
        terms["g_gan"] = self.weights["gan"] * terms["g_gan"]
        return sum(terms.values()), terms, fake

    def discriminator_loss(self, G: SISGenerator, batch: Batch, fake: torch.Tensor
                           ) -> tuple[torch.Tensor, Terms]:
        """Hinge terms on the generated and the real images (one joint D batch)."""
        parts = self._criterion().discriminator_loss(
            G, batch["labels"], self._edges(G, batch), batch["image"],
            batch.get("instances"), fake=fake)
        terms = {"d_fake": parts["D_Fake"], "d_real": parts["D_real"]}
        return terms["d_fake"] + terms["d_real"], terms
