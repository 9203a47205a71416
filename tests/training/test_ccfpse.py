"""CC-FPSE training parts: FPSE discriminator, VAE encoder, losses (tiny configurations)."""

from __future__ import annotations

import math

import pytest
import torch

from sisgen.models import build_model
from training.ccfpse import (
    CCFPSELoss,
    ConvEncoder,
    FPSEDiscriminator,
    FPSEOutput,
    discriminator_for,
    encoder_for,
    feature_matching_loss,
    hinge_loss,
    kld_loss,
)


def test_fpse_shapes_and_semantic_embedding_term():
    torch.manual_seed(0)
    d = FPSEDiscriminator(label_channels=6, ndf=4)
    img, seg = torch.randn(2, 3, 64, 64), torch.rand(2, 6, 64, 64)
    out = d(img, seg)
    assert [f.shape[1:] for f in out.features] == [(8, 16, 16), (16, 8, 8), (32, 4, 4),
                                                   (32, 2, 2)]
    assert [s.shape for s in out.scores] == [(2, 1, 16, 16), (2, 1, 8, 8), (2, 1, 4, 4)]
    # the score is the patch logit plus <seg(head), pooled embedding(labels)>: with the
    # label embedding zeroed only the real/fake head remains, so the labels no longer matter
    torch.nn.init.zeros_(d.embedding.weight)
    torch.nn.init.zeros_(d.embedding.bias)
    a, b = d(img, seg), d(img, torch.rand(2, 6, 64, 64))
    for sa, sb in zip(a.scores, b.scores, strict=True):
        torch.testing.assert_close(sa, sb)
    with pytest.raises(ValueError):
        d(img, seg[..., :32])


def test_fpse_backward_reaches_every_parameter(unconnected):
    torch.manual_seed(0)
    d = FPSEDiscriminator(label_channels=6, ndf=4)
    out = d(torch.randn(2, 3, 64, 64), torch.rand(2, 6, 64, 64))
    assert not unconnected(d, hinge_loss(out.scores, True) + sum(f.mean() for f in out.features))


def test_split_halves():
    t = torch.arange(4.0).view(4, 1)
    fake, real = FPSEOutput([t], [t * 2]).split()
    assert fake.features[0].flatten().tolist() == [0, 1]
    assert real.scores[0].flatten().tolist() == [4, 6]


def test_hinge_feature_matching_and_kld_closed_forms():
    s = [torch.tensor([0.5, -2.0]), torch.tensor([3.0])]
    # D real: mean(relu(1 - s)) per scale -> (0.5 + 3) / 2 = 1.75 and 0; averaged 0.875
    assert hinge_loss(s, True).item() == pytest.approx(0.875)
    # D fake: relu(1 + s) -> (1.5 + 0) / 2 = 0.75 and 4; averaged 2.375
    assert hinge_loss(s, False).item() == pytest.approx(2.375)
    # G: -mean(s) -> 0.75 and -3; averaged -1.125
    assert hinge_loss(s, True, for_discriminator=False).item() == pytest.approx(-1.125)
    with pytest.raises(ValueError):
        hinge_loss(s, False, for_discriminator=False)
    fake = [torch.zeros(2, 3), torch.ones(4)]
    real = [torch.ones(2, 3), torch.ones(4)]
    assert feature_matching_loss(fake, real, weight=20.0).item() == pytest.approx(10.0)
    mu, logvar = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, math.log(2.0)]])
    # 0.5 * sum(mu^2 + var - 1 - logvar) = 0.5 * (1 + 0 + 1 - log 2)
    assert kld_loss(mu, logvar).item() == pytest.approx(0.5 * (2 - math.log(2.0)))
    assert kld_loss(torch.zeros(3, 4), torch.zeros(3, 4)).item() == 0


def test_encoder_shapes():
    torch.manual_seed(0)
    e = ConvEncoder(ndf=2, z_dim=8)
    mu, logvar = e(torch.randn(2, 3, 64, 64))  # resized to 256 inside
    assert mu.shape == logvar.shape == (2, 8)
    assert ConvEncoder(ndf=2, z_dim=8, crop_size=128).n_layers == 5


def test_ccfpse_loss_generator_and_discriminator_steps():
    torch.manual_seed(0)
    g = build_model("ccfpse", dataset="tiny").train()
    d = discriminator_for(g, ndf=4)
    e = encoder_for(g, ndf=2)
    vgg = torch.nn.L1Loss()  # stands in for a pretrained VGG perceptual loss
    crit = CCFPSELoss(g, d, encoder=e, vgg_loss=vgg)
    labels, edges, _ = g.example_inputs(batch_size=2)
    real = torch.rand(2, 3, 64, 64) * 2 - 1
    losses, fake = crit.generator_losses(labels, edges, real)
    assert set(losses) == {"GAN", "GAN_Feat", "VGG", "KLD"} and fake.shape == real.shape
    sum(losses.values()).backward()
    assert g.fc.weight.grad is not None and e.fc_mu.weight.grad is not None
    assert e.layer1[0].parametrizations.weight.original.grad is not None
    d.zero_grad()
    dl = crit.discriminator_losses(labels, edges, real)
    assert set(dl) == {"D_Fake", "D_real"} and all(torch.isfinite(v) for v in dl.values())
    g.zero_grad()
    sum(dl.values()).backward()
    assert d.embedding.weight.grad is not None and g.fc.weight.grad is None
    # without an encoder, explicit noise drives the generator and there is no KL term
    losses, _ = CCFPSELoss(g, d).generator_losses(labels, edges, real,
                                                  noise=g.sample_noise([0, 1]))
    assert set(losses) == {"GAN", "GAN_Feat"}
