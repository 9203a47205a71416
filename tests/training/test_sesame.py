"""SESAME's two-stream discriminator, perceptual loss and G/D losses on a tiny config."""

from __future__ import annotations

import pytest
import torch

from sisgen.models import build_model
from sisgen.training.perceptual import VGGLoss
from sisgen.training.sesame import (
    SESAMEDiscriminator,
    SESAMELoss,
    SESAMENLayerDiscriminator,
    hinge_terms,
)


def _setup(batch: int = 2):
    torch.manual_seed(0)
    g = build_model("sesame", dataset="tiny").train()
    d = SESAMEDiscriminator(g.semantic_nc, ndf=4)
    labels, edges, _, image, mask = g.example_inputs(batch_size=batch)
    return g, d, (labels, edges, image, mask)


def test_discriminator_shapes_and_official_width():
    d = SESAMEDiscriminator(7, ndf=4, n_layers=4)
    out = d(torch.rand(2, 7, 64, 64), torch.rand(2, 3, 64, 64))
    assert len(out) == 2 and all(len(scale) == 5 for scale in out)
    assert [f.shape[1] for f in out[0]] == [4, 8, 16, 32, 1]
    assert out[0][-1].shape == (2, 1, 11, 11) and out[1][-1].shape == (2, 1, 7, 7)
    full = SESAMEDiscriminator(36)  # official Cityscapes D (35 labels + hole)
    assert sum(p.numel() for p in full.parameters()) == 11_106_562


def test_semantics_only_modulate_the_last_layer():
    d = SESAMENLayerDiscriminator(6, ndf=4).eval()
    image = torch.rand(1, 3, 32, 32)
    a = d(torch.rand(1, 6, 32, 32), image)
    b = d(torch.rand(1, 6, 32, 32), image)
    assert all(torch.equal(x, y) for x, y in zip(a[:-1], b[:-1], strict=True))
    assert not torch.equal(a[-1], b[-1])


def test_projection_value():
    x = torch.tensor([[[[2.0]], [[-1.0]]]])  # [1,2,1,1]
    sem = torch.tensor([[[[0.5]], [[1.0]], [[-2.0]]]])  # channel sum -0.5
    assert torch.allclose(SESAMENLayerDiscriminator.project(x, sem),
                          torch.tensor([[[[1.0]], [[-0.5]]]]))


def test_hinge_terms_closed_form():
    pred = [[torch.full((2, 1, 3, 3), 0.25)], [torch.full((2, 1, 2, 2), -2.0)]]
    assert hinge_terms(pred, True).item() == pytest.approx((0.75 + 3.0) / 2)
    assert hinge_terms(pred, False).item() == pytest.approx((1.25 + 0.0) / 2)
    assert hinge_terms(pred, True, for_discriminator=False).item() == pytest.approx(0.875)
    with pytest.raises(ValueError):
        hinge_terms(pred, False, for_discriminator=False)


def test_generator_step_reaches_g_and_both_streams():
    g, d, (labels, edges, image, mask) = _setup()
    crit = SESAMELoss(d, VGGLoss())
    losses, fake = crit.generator_loss(g, labels, edges, image, mask)
    assert set(losses) == {"GAN", "GAN_Feat", "VGG"}
    keep = (mask == 0).expand_as(image)
    assert torch.equal(fake[keep], image[keep])
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in g.parameters())
    for net in (d.discriminator_0, d.discriminator_1):
        assert all(p.grad is not None for p in net.sem_sequence.parameters())
        assert all(p.grad is not None for p in net.img_sequence.parameters())


def test_discriminator_step_and_raw_generator_composite():
    g, d, (labels, edges, image, mask) = _setup()
    g.composite = False  # the loss composites then
    crit = SESAMELoss(d)
    losses = crit.discriminator_loss(g, labels, edges, image, mask)
    assert set(losses) == {"D_Fake", "D_real"}
    sum(losses.values()).backward()
    assert all(p.grad is not None for p in d.parameters())
    assert all(p.grad is None for p in g.parameters())
    _, fake = crit.generate(g, labels, edges, image, mask)
    keep = (mask == 0).expand_as(image)
    assert torch.equal(fake[keep], image[keep])
