"""pix2pixHD training pieces: multi-scale PatchGAN, LSGAN, feature matching, VGG, encoder."""

from __future__ import annotations

import pytest
import torch

from sisgen.models import build_model
from sisgen.models.pix2pixhd_encoder import Pix2PixHDEncoder
from sisgen.training.perceptual import VGGLoss
from sisgen.training.pix2pixhd import (
    MultiscaleDiscriminator,
    NLayerDiscriminator,
    discriminator_for,
    feature_matching_loss,
    gan_loss,
    pix2pixhd_losses,
)


def test_patchgan_layout_and_shapes():
    d = NLayerDiscriminator(6, ndf=4, n_layers=3)
    outs = d(torch.randn(2, 6, 64, 64))
    # three stride-2 convs then two stride-1 convs (4x4, padding 2: +1 pixel each)
    assert [o.shape[1:] for o in outs] == [(4, 33, 33), (8, 17, 17), (16, 9, 9),
                                            (32, 10, 10), (1, 11, 11)]
    assert NLayerDiscriminator(6, ndf=512, n_layers=2).model2[0].out_channels == 512  # cap


def test_multiscale_discriminator_names_and_scales():
    d = MultiscaleDiscriminator(6, ndf=4, n_layers=2, num_d=3)
    names = set(dict(d.named_parameters()))
    assert "scale0_layer0.0.weight" in names and "scale2_layer3.0.weight" in names
    outs = d(torch.randn(1, 6, 32, 32))
    assert len(outs) == 3 and all(len(o) == 4 for o in outs)
    assert [o[0].shape[-1] for o in outs] == [17, 9, 5]  # finest first
    flat = MultiscaleDiscriminator(6, ndf=4, n_layers=2, num_d=2, get_interm_feat=False)
    assert "layer1.0.weight" in dict(flat.named_parameters())
    assert [len(o) for o in flat(torch.randn(1, 6, 32, 32))] == [1, 1]


def test_lsgan_and_vanilla_closed_forms():
    preds = [[torch.zeros(1, 2, 3, 3), torch.full((1, 1, 4, 4), 0.25)],
             [torch.zeros(1, 2, 2, 2), torch.full((1, 1, 2, 2), -1.0)]]
    assert torch.isclose(gan_loss(preds, True), torch.tensor(0.75**2 + 2.0**2))
    assert torch.isclose(gan_loss(preds, False), torch.tensor(0.25**2 + 1.0))
    bce = gan_loss(preds, True, use_lsgan=False)
    expect = -torch.log(torch.sigmoid(torch.tensor(0.25))) - torch.log(torch.sigmoid(
        torch.tensor(-1.0)))
    assert torch.isclose(bce, expect)


def test_feature_matching_weights():
    real = [[torch.zeros(1, 2, 4, 4), torch.zeros(1, 3, 2, 2), torch.zeros(1, 1, 2, 2)]] * 2
    fake = [[torch.ones(1, 2, 4, 4), torch.full((1, 3, 2, 2), 2.0), torch.full((1, 1, 2, 2), 9.)]
            ] * 2
    # per scale: (1 + 2) * 4/(n_layers+1) * lambda / num_D, logits ignored
    loss = feature_matching_loss(fake, real, n_layers=3, lambda_feat=10.0)
    assert torch.isclose(loss, torch.tensor(2 * 3 * 1.0 * 10 / 2))
    r = torch.zeros(1, 1, 2, 2, requires_grad=True)
    f = torch.ones(1, 1, 2, 2, requires_grad=True)
    feature_matching_loss([[f, f]], [[r, r]]).backward()
    assert r.grad is None and f.grad is not None  # the real side is detached


@pytest.mark.parametrize("with_encoder", [False, True])
def test_one_training_step(with_encoder):
    torch.manual_seed(0)
    g = build_model("pix2pixhd", dataset="tiny", feat_num=3 if with_encoder else 0)
    d = discriminator_for(g, ndf=4, n_layers=2, num_d=2)
    assert d.scale0_layer0[0].in_channels == 5 + 1 + 3
    enc = Pix2PixHDEncoder(feat_num=3, nef=4, n_downsampling=2) if with_encoder else None
    labels, edges, _ = g.example_inputs(batch_size=2)[:3]
    real = torch.rand(2, 3, 64, 64) * 2 - 1
    inst = torch.zeros_like(labels)
    losses, fake = pix2pixhd_losses(g, d, labels, real, edges, encoder=enc, instance=inst,
                                    vgg_loss=VGGLoss() if with_encoder else None)
    assert set(losses) == {"G_GAN", "G_GAN_Feat", "G_VGG", "D_real", "D_fake"}
    assert fake.shape == real.shape and all(torch.isfinite(v) for v in losses.values())
    assert (losses["G_VGG"] > 0) == with_encoder
    g_params = list(g.parameters()) + (list(enc.parameters()) if enc else [])
    opt_g = torch.optim.Adam(g_params, lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_g.zero_grad()
    (losses["G_GAN"] + losses["G_GAN_Feat"] + losses["G_VGG"]).backward(retain_graph=True)
    if enc is not None:  # the encoder learns through the generator's losses
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())
    d.zero_grad()  # G's backward reached D through pred_fake; D learns from its own terms
    opt_g.step()
    ((losses["D_real"] + losses["D_fake"]) * 0.5).backward()
    assert all(p.grad is not None for p in d.parameters())
    opt_d.step()
    if with_encoder:
        with pytest.raises(ValueError, match="encoder"):
            pix2pixhd_losses(g, d, labels, real, edges)
