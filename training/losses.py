"""GAN losses: hinge adversarial terms and discriminator feature matching."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def hinge_d_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Hinge loss of the discriminator, averaged over scales."""
    loss = sum(F.relu(1 - r[-1]).mean() + F.relu(1 + f[-1]).mean()
               for r, f in zip(real, fake, strict=True))
    return loss / len(real)


def hinge_g_loss(fake: list[list[torch.Tensor]]) -> torch.Tensor:
    """Generator side of the hinge loss, averaged over scales."""
    return sum(-f[-1].mean() for f in fake) / len(fake)


def feature_matching_loss(real: list[list[torch.Tensor]], fake: list[list[torch.Tensor]]
                          ) -> torch.Tensor:
    """L1 between D's intermediate features of real and fake (final logits excluded)."""
    loss = torch.zeros((), device=fake[0][0].device)
    for r_scale, f_scale in zip(real, fake, strict=True):
        for r, f in zip(r_scale[:-1], f_scale[:-1], strict=True):
            loss = loss + F.l1_loss(f, r.detach())
    return loss / len(real)
