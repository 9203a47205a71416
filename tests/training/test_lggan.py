"""LGGAN training pieces: classifier head, class and local L1 losses, G and D steps."""

from __future__ import annotations

import math

import torch

from sisgen.models import build_model
from sisgen.training.discriminator import MultiScaleDiscriminator
from sisgen.training.lggan import (
    LGGANClassifier,
    class_loss,
    class_presence,
    lggan_discriminator_losses,
    lggan_generator_losses,
    local_l1_loss,
)


def test_class_loss_closed_form():
    # uniform logits: CE = log(C) for every present class
    scores = torch.zeros(2, 4, 4)
    valid = torch.tensor([[1.0, 0, 1, 0], [1, 1, 1, 1]])
    torch.testing.assert_close(class_loss(scores, valid), torch.tensor(math.log(4)))
    # absent classes do not count, however wrong their scores
    scores = torch.full((1, 3, 3), -10.0)
    scores[0, 0, 0] = 10.0
    scores[0, 1, 0] = 10.0  # class 1 misclassified, but absent
    ce0 = -torch.log_softmax(scores[0, 0], 0)[0]
    torch.testing.assert_close(class_loss(scores, torch.tensor([[1.0, 0, 0]])), ce0)
    assert class_loss(scores, torch.zeros(1, 3)) == 0


def test_local_l1_closed_form():
    masks = torch.zeros(1, 3, 4, 4)
    masks[0, 0, :2] = 1
    masks[0, 2, 2:] = 1
    real = torch.ones(1, 3, 4, 4)
    images = torch.zeros(1, 3, 3, 4, 4)
    # sum_k mean|0 - mask_k|: each class contributes its pixel fraction -> 1/2 + 0 + 1/2
    torch.testing.assert_close(local_l1_loss(images, masks, real), torch.tensor(1.0))
    images = real.unsqueeze(1) * masks.unsqueeze(2)
    assert local_l1_loss(images, masks, real) == 0


def test_class_presence():
    masks = torch.zeros(2, 3, 4, 4)
    masks[0, 1, 0, 0] = 1
    masks[1, 2] = 1
    assert torch.equal(class_presence(masks), torch.tensor([[0.0, 1, 0], [0, 0, 1]]))


def test_generator_and_discriminator_steps():
    torch.manual_seed(0)
    g = build_model("lggan", dataset="tiny", n_blocks=1).train()
    cls = LGGANClassifier.for_generator(g)
    assert cls.fc2.in_features == g.ngf and cls.fc2.out_features == 5
    labels, edges, _ = g.example_inputs(batch_size=2)
    seg = g.condition(labels, edges)
    d = MultiScaleDiscriminator(seg.shape[1] + 3, num_d=2, ndf=4, n_layers=2)
    real = torch.rand(2, 3, 64, 64) * 2 - 1
    out = g.forward_all(labels, edges)
    assert cls(out.class_features).shape == (2, 5, 5)

    losses = lggan_generator_losses(out, real, seg, d, cls, image_l1=True,
                                    vgg_loss=lambda a, b: (a - b).square().mean())
    assert set(losses) == {"GAN", "GAN_Feat", "VGG", "L1", "class", "L1_Local"}
    assert all(torch.isfinite(v) and v.dim() == 0 for v in losses.values())
    sum(losses.values()).backward()
    assert cls.fc2.weight.grad.abs().sum() > 0
    assert g.deconv5[0].weight.grad.abs().sum() > 0
    assert g.deconv5_attention.weight.grad.abs().sum() > 0

    d.zero_grad()
    d_losses = lggan_discriminator_losses(out, real, seg, d)
    assert set(d_losses) == {"D_Fake", "D_real"}
    g.zero_grad()
    sum(d_losses.values()).backward()
    assert all(p.grad is None for p in g.parameters())  # fakes are detached
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in d.parameters())
