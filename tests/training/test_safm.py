"""SAFM training parts: segmentation network, class-balanced CE, generator/discriminator step."""

from __future__ import annotations

import math

import pytest
import torch

from sisgen.models import build_model
from sisgen.training.discriminator import MultiScaleDiscriminator, discriminate
from sisgen.training.losses import hinge_d_loss
from sisgen.training.safm import (
    SEGEPOCH,
    SAFMLoss,
    SAFMSegNet,
    class_balance_weights,
    class_balanced_cross_entropy,
)


def _onehot(idx: torch.Tensor, n: int) -> torch.Tensor:
    return (idx.unsqueeze(1) == torch.arange(n).view(1, n, 1, 1)).float()


def test_segnet_shapes_and_official_widths():
    net = SAFMSegNet(num_classes=7, ndf=4)
    assert net(torch.randn(2, 3, 64, 64)).shape == (2, 7, 64, 64)
    assert [b.conv2[1].out_channels for b in net.body_down] == [8, 8, 16, 16, 32, 32]
    assert net.body_up[-1].conv2[1].out_channels == 4 and net.layer_up_last.in_channels == 4
    assert SAFMSegNet(3, num_res_blocks=3, ndf=2)(torch.randn(1, 3, 8, 8)).shape == (1, 3, 8, 8)
    assert torch.count_nonzero(net.layer_up_last.bias) == 0  # official init: zero bias
    full = SAFMSegNet(num_classes=36, spectral=False, init=False)  # Cityscapes, ndf=64
    widths = [b.conv2[1].out_channels for b in full.body_down + full.body_up]
    assert widths == [128, 128, 256, 256, 512, 512, 512, 256, 256, 128, 128, 64]
    with pytest.raises(ValueError):
        SAFMSegNet(3, num_res_blocks=7)


def test_class_balance_weights_closed_form():
    # channels: class 0, class 1, dontcare (last); pixels: 0, 1 / 1, dontcare
    label = _onehot(torch.tensor([[[0, 1], [1, 2]]]), 3)
    # P / (K * n_c): P = 4 pixels, K = 2 classes present (dontcare excluded)
    w = class_balance_weights(label, dontcare_index=-1)
    assert torch.allclose(w, torch.tensor([[[2.0, 1.0], [1.0, 0.0]]]))
    w_none = class_balance_weights(label, dontcare_index=None)  # K = 3
    assert torch.allclose(w_none, torch.tensor([[[4 / 3, 2 / 3], [2 / 3, 4 / 3]]]))
    w_ade = class_balance_weights(label, dontcare_index=0)  # the official ADE20K setting
    assert torch.allclose(w_ade, torch.tensor([[[0.0, 1.0], [1.0, 2.0]]]))
    # an all-zero one-hot pixel (id outside the vocabulary) weighs nothing
    holes = _onehot(torch.tensor([[[0, 1], [1, 9]]]), 2)
    assert class_balance_weights(holes, None)[0, 1, 1] == 0


def test_class_balanced_cross_entropy_closed_form():
    label = _onehot(torch.tensor([[[0, 1], [1, 2]]]), 3)  # weights 2, 1 / 1, 0
    assert torch.isclose(class_balanced_cross_entropy(torch.zeros(1, 3, 2, 2), label),
                         torch.tensor(math.log(3)))  # mean weight 1, CE log 3 everywhere
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 0, 0, 0] = math.log(2)  # p(class 0) = 2/4      -> CE log 2,   weight 2
    # pixel (0, 1): uniform            -> CE log 3,   weight 1
    logits[0, 1, 1, 0] = math.log(4)  # p(class 1) = 4/6      -> CE log 3/2, weight 1
    logits[0, 0, 1, 1] = 50.0  # dontcare pixel, confidently wrong: weight 0
    expected = (2 * math.log(2) + math.log(3) + math.log(1.5)) / 4  # = log(18) / 4
    got = class_balanced_cross_entropy(logits, label)
    assert torch.isclose(got, torch.tensor(expected)) and math.isclose(expected, math.log(18) / 4)


def test_generator_and_discriminator_step_tiny():
    torch.manual_seed(0)
    g = build_model("safm", dataset="tiny").train()
    labels, edges, _ = g.example_inputs(batch_size=2)[:3]
    onehot_nc = g.label_nc + int(g.dontcare)
    seg_nc = onehot_nc + int(g.use_edges)
    d = MultiScaleDiscriminator(seg_nc + 3, num_d=2, ndf=4, n_layers=2)
    segnet = SAFMSegNet(onehot_nc, num_res_blocks=4, ndf=4)
    loss = SAFMLoss(d, segnet, segepoch=SEGEPOCH["cityscapes"])
    real = torch.rand(2, 3, 64, 64) * 2 - 1

    early, _ = loss.generator_loss(g, labels, edges, real, epoch=1)
    assert set(early) == {"GAN", "GAN_Feat", "Real_seg"}  # Fake_seg waits for segepoch
    assert not loss.fake_seg_active(60) and loss.fake_seg_active(61)

    for m in (g, d, segnet):
        m.zero_grad(set_to_none=True)
    g_losses, fake = loss.generator_loss(g, labels, edges, real, epoch=61)
    assert set(g_losses) == {"GAN", "GAN_Feat", "Real_seg", "Fake_seg"}
    assert fake.shape == (2, 3, 64, 64)
    assert all(torch.isfinite(v) for v in g_losses.values())
    # the fake seg term alone reaches the generator through the segmenter
    (via_seg,) = torch.autograd.grad(g_losses["Fake_seg"], g.conv_img.weight, retain_graph=True)
    assert via_seg.abs().sum() > 0
    sum(g_losses.values()).backward()
    assert g.conv_img.weight.grad is not None and g.conv_img.weight.grad.abs().sum() > 0
    assert segnet.layer_up_last.weight.grad.abs().sum() > 0  # trained with G

    for m in (g, d, segnet):
        m.zero_grad(set_to_none=True)
    d_losses = loss.discriminator_loss(g, labels, edges, real)
    assert set(d_losses) == {"D_Fake", "D_real"}
    d_total = sum(d_losses.values())
    assert torch.isfinite(d_total)
    d_total.backward()
    assert all(p.grad is not None for p in d.parameters())
    assert all(p.grad is None for p in g.parameters())  # fake regenerated without grad
    with torch.no_grad():  # the split terms add up to the repo's hinge loss
        _, seg = loss.semantics(g, labels, edges)
        pf, pr = discriminate(loss.discriminator, seg, fake.detach(), real)
        split = loss.discriminator_loss(g, labels, edges, real, fake=fake)
        assert torch.isclose(split["D_Fake"] + split["D_real"], hinge_d_loss(pr, pf))
