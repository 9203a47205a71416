"""OASIS training parts: U-Net discriminator, (N+1)-class balanced loss, LabelMix."""

from __future__ import annotations

import math

import pytest
import torch

from sisgen.models import build_model
from sisgen.training.oasis import (
    OASISDiscriminator,
    OASISLoss,
    OASISResBlockD,
    class_balance_weights,
    init_oasis_weights,
    labelmix,
    labelmix_loss,
    n1_target,
    oasis_adversarial_loss,
)


def _onehot(idx: torch.Tensor, n: int) -> torch.Tensor:
    return (idx.unsqueeze(1) == torch.arange(n).view(1, n, 1, 1)).float()


def test_resblock_resampling():
    x = torch.randn(2, 3, 16, 16)
    assert OASISResBlockD(3, 8, -1, first=True, spectral=False)(x).shape == (2, 8, 8, 8)
    assert OASISResBlockD(3, 8, 1, spectral=False)(x).shape == (2, 8, 32, 32)
    assert OASISResBlockD(3, 3, -1)(x).shape == (2, 3, 8, 8)  # identity shortcut, pooled


def test_discriminator_shapes_and_official_size():
    d = OASISDiscriminator(semantic_nc=6, ndf=4)
    out = d(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 7, 64, 64)
    assert [b.conv2[1].out_channels for b in d.body_down] == [8, 8, 16, 16, 32, 32]
    full = OASISDiscriminator(semantic_nc=35, spectral=False)  # official widths (ndf=64)
    assert 22.2e6 < sum(p.numel() for p in full.parameters()) < 22.3e6  # paper: 22M
    with pytest.raises(ValueError):
        OASISDiscriminator(semantic_nc=3, num_res_blocks=7)


def test_class_balance_weights_closed_form():
    idx = torch.tensor([[[0, 1], [1, 2]]])  # dontcare 1 px, class 1: 2 px, class 2: 1 px
    label = _onehot(idx, 4)
    w = class_balance_weights(label, dontcare=True)
    # P / (K * n_c) with P = 4 pixels, K = 2 present classes (dontcare excluded)
    assert torch.allclose(w, torch.tensor([[[0.0, 1.0], [1.0, 2.0]]]))
    w_all = class_balance_weights(label, dontcare=False)  # K = 3, dontcare is a class
    assert torch.allclose(w_all, torch.tensor([[[4 / 3, 2 / 3], [2 / 3, 4 / 3]]]))


def test_n1_loss_closed_form():
    idx = torch.tensor([[[0, 1], [1, 2]]])
    label = _onehot(idx, 4)
    assert n1_target(label, True).tolist() == [[[1, 2], [2, 3]]]
    assert n1_target(label, False).eq(0).all()
    logits = torch.zeros(1, 5, 2, 2)  # uniform: CE = log(N+1) everywhere
    assert torch.isclose(oasis_adversarial_loss(logits, label, False), torch.tensor(math.log(5)))
    real = oasis_adversarial_loss(logits, label, True)  # mean weight (0+1+1+2)/4 = 1
    assert torch.isclose(real, torch.tensor(math.log(5)))
    # confident correct logits -> ~0 on real, large on fake
    sure = 20 * torch.nn.functional.one_hot(n1_target(label, True), 5).permute(0, 3, 1, 2)
    assert oasis_adversarial_loss(sure.float(), label, True) < 1e-6
    assert oasis_adversarial_loss(sure.float(), label, False) > 10


def test_labelmix_per_class_and_consistency_loss():
    idx = torch.tensor([[[0, 1, 1, 2]] * 4, [[2, 2, 1, 0]] * 4])  # [2,4,4]
    label = _onehot(idx, 3)
    real, fake = torch.ones(2, 3, 4, 4), -torch.ones(2, 3, 4, 4)
    mixed, mask = labelmix(label, fake, real, torch.Generator().manual_seed(3))
    assert mask.shape == (2, 1, 4, 4) and set(mask.unique().tolist()) <= {0.0, 1.0}
    for c in range(3):  # one bit per class, shared by the batch
        assert mask[:, 0][idx == c].unique().numel() == 1
    assert torch.equal(mixed, torch.where(mask.bool(), real, fake).expand_as(mixed))
    again, mask2 = labelmix(label, fake, real, torch.Generator().manual_seed(3))
    assert torch.equal(mask, mask2) and torch.equal(mixed, again)

    d_real, d_fake = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    consistent = mask * d_real + (1 - mask) * d_fake
    assert labelmix_loss(mask, consistent, d_fake, d_real) == 0
    assert torch.isclose(labelmix_loss(mask, consistent + 0.5, d_fake, d_real),
                         torch.tensor(0.25))


def test_training_step_tiny():
    torch.manual_seed(0)
    g = build_model("oasis", dataset="tiny").train()
    d = OASISDiscriminator(semantic_nc=g.semantic_nc, ndf=4)
    init_oasis_weights(d)
    labels, _, noise = g.example_inputs(batch_size=2)
    label = g.semantic_map(labels)  # [2,6,64,64], dontcare first
    real = torch.rand(2, 3, 64, 64) * 2 - 1
    loss = OASISLoss(lambda_labelmix=5.0)

    fake = g(labels, None, noise)
    total, parts = loss.discriminator_loss(d, real, fake, label, torch.Generator().manual_seed(0))
    assert set(parts) == {"d_fake", "d_real", "d_labelmix"}
    assert torch.isfinite(total)
    total.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())
    assert all(p.grad is None for p in g.parameters())  # fake is detached for D

    d.zero_grad()
    g_loss = loss.generator_loss(d, fake, label)
    g_loss.backward()
    assert torch.isfinite(g_loss) and g.conv_img.weight.grad.abs().sum() > 0
