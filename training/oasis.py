"""Training parts of OASIS (and VA-OASIS, which trains the same way).

* :class:`OASISDiscriminator` -- a U-Net segmentation network: an encoder of residual
  down-blocks, a decoder of residual up-blocks with skip connections, and a 1x1 conv to
  ``N + 1`` per-pixel logits (the N label channels, plus "fake" as class 0).
* :func:`oasis_adversarial_loss` -- the (N+1)-class cross-entropy, class-balanced on real
  pixels by inverse label frequency (:func:`class_balance_weights`).
* :func:`labelmix` and :func:`labelmix_loss` -- LabelMix: real and fake images mixed by a
  random binary choice per class, and the consistency between D's output on the mix and
  the same mix of its outputs on real and fake.
* :class:`OASISLoss` -- the discriminator and generator objectives put together.
* :class:`OASISObjective` -- the trainer's objective for ``oasis`` and ``va_oasis``.

Labels here are the generator's official one-hot map ``[B,N,H,W]`` with the dontcare
class in channel 0 (``OASISGenerator.semantic_map``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from sisgen.models.base import SISGenerator
from sisgen.models.layers import maybe_sn

from .objective import Batch, Objective, Terms, register_objective

# ---------------------------------------------------------------------------- network


class OASISResBlockD(nn.Module):
    """A residual block of the OASIS discriminator.

    ``conv1``: (LeakyReLU, [upsample,] SN conv 3x3) -- just the conv for the first block;
    ``conv2``: (LeakyReLU, SN conv 3x3); a down block average-pools after ``conv2``. The
    shortcut resamples and applies a 1x1 SN conv (with bias) when the width changes: the
    first block pools before its conv, the others upsample before / pool after it.

    Args:
        fin: Input channels.
        fout: Output channels.
        up_or_down: ``1`` upsample, ``-1`` downsample, ``0`` keep the size.
        first: The first encoder block (no activation before its first conv).
        spectral: Spectral-normalize the convs.
    """

    def __init__(self, fin: int, fout: int, up_or_down: int, first: bool = False,
                 spectral: bool = True):
        super().__init__()
        self.up_or_down, self.first = up_or_down, first
        self.learned_shortcut = fin != fout

        def conv3(cin: int) -> nn.Module:
            return maybe_sn(nn.Conv2d(cin, fout, 3, 1, 1), spectral)

        if first:
            self.conv1 = nn.Sequential(conv3(fin))
        elif up_or_down > 0:
            self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), nn.Upsample(scale_factor=2),
                                       conv3(fin))
        else:
            self.conv1 = nn.Sequential(nn.LeakyReLU(0.2), conv3(fin))
        self.conv2 = nn.Sequential(nn.LeakyReLU(0.2), conv3(fout))
        if self.learned_shortcut:
            self.conv_s = maybe_sn(nn.Conv2d(fin, fout, 1, 1, 0), spectral)

    def _resample(self, x: torch.Tensor, up: bool) -> torch.Tensor:
        if up and self.up_or_down > 0:
            return F.interpolate(x, scale_factor=2.0, mode="nearest")
        if not up and self.up_or_down < 0:
            return F.avg_pool2d(x, 2)
        return x

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The skip path (resampling + optional 1x1 conv)."""
        if self.first:
            x = self._resample(x, up=False)
            return self.conv_s(x) if self.learned_shortcut else x
        x = self._resample(x, up=True)
        if self.learned_shortcut:
            x = self.conv_s(x)
        return self._resample(x, up=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``[B,fin,h,w]`` -> ``[B,fout,h',w']`` (h' = 2h up, h/2 down)."""
        dx = self.conv2(self.conv1(x))
        return self.shortcut(x) + self._resample(dx, up=False)


class OASISDiscriminator(nn.Module):
    """The OASIS U-Net discriminator: per-pixel (N+1)-class logits.

    Widths (official, ``ndf=64``): encoder 3 -> 128, 128, 256, 256, 512, 512; the decoder
    mirrors them, reading the concatenation of the previous decoder output and the encoder
    feature of the same size, and ends at ``ndf`` channels before the 1x1 classifier.

    Args:
        semantic_nc: Label channels N (the classifier outputs N + 1; class 0 = fake).
        num_res_blocks: Encoder (and decoder) blocks, at most 6.
        ndf: Width unit (the official widths are fixed to ``ndf=64``).
        spectral: Spectral-normalize the block convs.
        in_channels: Image channels.
        out_channels: Output channels (default ``semantic_nc + 1``: the N+1 classes; SAFM's
            segmenter uses the same U-Net with ``semantic_nc`` outputs).
    """

    def __init__(self, semantic_nc: int, num_res_blocks: int = 6, ndf: int = 64,
                 spectral: bool = True, in_channels: int = 3, out_channels: int | None = None):
        super().__init__()
        if not 2 <= num_res_blocks <= 6:
            raise ValueError("num_res_blocks must be in 2..6")
        ch = [in_channels, 2 * ndf, 2 * ndf, 4 * ndf, 4 * ndf, 8 * ndf, 8 * ndf]
        ch = ch[:num_res_blocks + 1]
        self.semantic_nc = semantic_nc
        self.body_down = nn.ModuleList(
            OASISResBlockD(ch[i], ch[i + 1], -1, first=i == 0, spectral=spectral)
            for i in range(num_res_blocks)
        )
        up = [OASISResBlockD(ch[-1], ch[-2], 1, spectral=spectral)]
        up += [OASISResBlockD(2 * ch[-1 - i], ch[-2 - i], 1, spectral=spectral)
               for i in range(1, num_res_blocks - 1)]
        up.append(OASISResBlockD(2 * ch[1], ndf, 1, spectral=spectral))
        self.body_up = nn.ModuleList(up)
        self.layer_up_last = nn.Conv2d(ndf, out_channels or semantic_nc + 1, 1, 1, 0)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``[B,3,H,W]`` image -> ``[B,N+1,H,W]`` logits (H, W multiples of 2^blocks)."""
        skips = []
        x = image
        for block in self.body_down:
            x = block(x)
            skips.append(x)
        x = self.body_up[0](x)
        for i in range(1, len(self.body_down)):
            x = self.body_up[i](torch.cat([skips[-i - 1], x], dim=1))
        return self.layer_up_last(x)


def init_oasis_weights(module: nn.Module, gain: float = 0.02) -> None:
    """The official OASIS initialization for a discriminator (Xavier-normal, zero bias).

    Spectral-normalized convs get it on their un-normalized weight.
    """
    from torch.nn.utils import parametrize

    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                w = (m.parametrizations.weight.original
                     if parametrize.is_parametrized(m, "weight") else m.weight)
                nn.init.xavier_normal_(w, gain=gain)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


# ----------------------------------------------------------------------------- losses


def class_balance_weights(label: torch.Tensor, dontcare: bool = True) -> torch.Tensor:
    """Per-pixel weights ``[B,H,W]`` that balance the classes of a batch.

    A pixel of class c weighs ``P / (K * n_c)``: P pixels in the batch, ``n_c`` of them of
    class c, K classes present. With ``dontcare`` channel 0 is excluded from K and its
    pixels weigh 0.

    Args:
        label: One-hot ``[B,N,H,W]``.
        dontcare: Channel 0 is the dontcare class.
    """
    counts = label.sum(dim=(0, 2, 3))  # [N]
    if dontcare:
        counts = torch.cat([torch.zeros_like(counts[:1]), counts[1:]])
    present = (counts > 0).sum().clamp(min=1)
    pixels = label.shape[0] * label.shape[2] * label.shape[3]
    coef = torch.where(counts > 0, pixels / (present * counts.clamp(min=1)),
                       torch.zeros_like(counts))
    return coef[label.argmax(dim=1)]


def n1_target(label: torch.Tensor, for_real: bool) -> torch.Tensor:
    """The (N+1)-class target ``[B,H,W]``: ``1 + class`` for real pixels, 0 (fake) else."""
    cls = label.argmax(dim=1)
    return cls + 1 if for_real else torch.zeros_like(cls)


def oasis_adversarial_loss(logits: torch.Tensor, label: torch.Tensor, for_real: bool,
                           balance: bool = True, dontcare: bool = True) -> torch.Tensor:
    """The OASIS (N+1)-class adversarial loss.

    Real targets (D on real images, and G's loss on fakes) are the pixel's class, with
    class-balancing weights; fake targets are class 0, unweighted.

    Args:
        logits: D's output ``[B,N+1,H,W]``.
        label: One-hot ``[B,N,H,W]``.
        for_real: Target the real classes (True) or "fake" (False).
        balance: Weight real pixels by :func:`class_balance_weights`.
        dontcare: Channel 0 is the dontcare class (zero weight).
    """
    ce = F.cross_entropy(logits, n1_target(label, for_real), reduction="none")  # [B,H,W]
    if for_real and balance:
        ce = ce * class_balance_weights(label, dontcare)
    return ce.mean()


def labelmix(label: torch.Tensor, fake: torch.Tensor, real: torch.Tensor,
             generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix real and fake images class by class.

    Every label channel draws one bit (shared by the batch, as the official code draws one
    per class present in the batch); pixels of a class with bit 1 show the real image.

    Args:
        label: One-hot ``[B,N,H,W]``.
        fake: ``[B,3,H,W]`` generated images.
        real: ``[B,3,H,W]`` real images.
        generator: CPU random generator for the bits (default: the global one).

    Returns:
        The mixed images ``[B,3,H,W]`` and the mask ``[B,1,H,W]`` (1 = real).
    """
    bits = torch.randint(0, 2, (label.shape[1],), generator=generator)
    mask = bits.to(device=real.device, dtype=real.dtype)[label.argmax(dim=1, keepdim=True)]
    return mask * real + (1 - mask) * fake, mask


def labelmix_loss(mask: torch.Tensor, d_mixed: torch.Tensor, d_fake: torch.Tensor,
                  d_real: torch.Tensor) -> torch.Tensor:
    """LabelMix consistency: ``MSE(mask * D(real) + (1 - mask) * D(fake), D(mix))``."""
    return F.mse_loss(mask * d_real + (1 - mask) * d_fake, d_mixed)


@dataclass
class OASISLoss:
    """The OASIS objectives (VGG perceptual loss, off by default officially, not included).

    Attributes:
        lambda_labelmix: LabelMix weight (official: 5 Cityscapes, 10 ADE20K / COCO-Stuff).
        use_labelmix: Add the LabelMix term to D's loss.
        balance: Class-balance the real terms.
        dontcare: Channel 0 of the labels is dontcare.
    """

    lambda_labelmix: float = 10.0
    use_labelmix: bool = True
    balance: bool = True
    dontcare: bool = True

    def discriminator_loss(self, netD: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                      label: torch.Tensor, generator: torch.Generator | None = None
                      ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """D's loss: fake -> class 0, real -> its classes, + LabelMix.

        Args:
            netD: The discriminator.
            real: Real images ``[B,3,H,W]``.
            fake: Generated images (detached by the caller or here).
            label: One-hot ``[B,N,H,W]``.
            generator: Random generator for LabelMix.

        Returns:
            The total and its terms (``d_fake``, ``d_real``, ``d_labelmix``).
        """
        fake = fake.detach()
        out_fake, out_real = netD(fake), netD(real)
        parts = {
            "d_fake": oasis_adversarial_loss(out_fake, label, False, self.balance,
                                             self.dontcare),
            "d_real": oasis_adversarial_loss(out_real, label, True, self.balance,
                                             self.dontcare),
        }
        if self.use_labelmix:
            mixed, mask = labelmix(label, fake, real, generator)
            parts["d_labelmix"] = self.lambda_labelmix * labelmix_loss(
                mask, netD(mixed), out_fake, out_real)
        return sum(parts.values()), parts  # type: ignore[return-value]

    def generator_loss(self, netD: nn.Module, fake: torch.Tensor, label: torch.Tensor
                  ) -> torch.Tensor:
        """G's adversarial loss: D should see the label's classes on the fake image."""
        return oasis_adversarial_loss(netD(fake), label, True, self.balance, self.dontcare)


# -------------------------------------------------------------------------- objective


@register_objective("oasis", "va_oasis")
class OASISObjective(Objective):
    """OASIS training (also VA-OASIS, which the VASIS authors train the same way).

    The discriminator is the U-Net :class:`OASISDiscriminator` segmenting images into the
    N label classes plus "fake"; there is no feature matching. Loss weights (official
    ``config.py``):

    * ``gan`` (1): the class-balanced (N+1)-class adversarial loss of the generator;
    * ``labelmix`` (10; the official Cityscapes default is 5): LabelMix consistency in D's
      loss (0 turns LabelMix off);
    * ``vgg`` (0; ``--add_vgg_loss`` with ``--lambda_vgg 10`` turns it on): perceptual loss.

    Discriminator arguments: ``num_res_blocks`` (``None``: the generator's, at most 6 --
    the official D shares ``--num_res_blocks`` with G), ``ndf`` (64), ``spectral`` (True).
    The 3D noise comes from the trainer's ``noise`` (drawn per pixel, as OASIS samples it).
    """

    default_losses: ClassVar[dict[str, float]] = {"gan": 1.0, "labelmix": 10.0, "vgg": 0.0}
    default_discriminator: ClassVar[dict[str, Any]] = {"num_res_blocks": None, "ndf": 64,
                                                       "spectral": True}

    def build(self, generator: SISGenerator) -> None:
        """The U-Net discriminator with the official initialization."""
        blocks = self.d_args["num_res_blocks"] or min(6, int(generator.num_res_blocks))
        d = OASISDiscriminator(generator.semantic_nc, num_res_blocks=blocks,
                               ndf=self.d_args["ndf"], spectral=self.d_args["spectral"])
        init_oasis_weights(d)
        self.d_nets["D"] = d

    def generator_loss(self, G: SISGenerator, batch: Batch, noise: torch.Tensor | None
                       ) -> tuple[torch.Tensor, Terms, torch.Tensor]:
        """D should see the label's classes on the fake image (+ VGG when weighted)."""
        w = self.weights
        fake = G(**self.generator_inputs(G, batch, noise))
        label = G.semantic_map(batch["labels"], fake.dtype)
        terms: Terms = {"g_gan": w["gan"] * oasis_adversarial_loss(self.d_nets["D"](fake),
                                                                   label, True)}
        if w["vgg"] > 0:
            terms["g_vgg"] = w["vgg"] * self.perceptual_loss(fake, batch["image"])
        return sum(terms.values()), terms, fake

    def discriminator_loss(self, G: SISGenerator, batch: Batch, fake: torch.Tensor
                           ) -> tuple[torch.Tensor, Terms]:
        """Fake pixels -> class 0, real pixels -> their classes, + LabelMix."""
        label = G.semantic_map(batch["labels"], fake.dtype)
        crit = OASISLoss(lambda_labelmix=self.weights["labelmix"],
                         use_labelmix=self.weights["labelmix"] > 0)
        loss, parts = crit.discriminator_loss(self.d_nets["D"], batch["image"], fake, label)
        return loss, parts
