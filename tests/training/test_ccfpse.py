"""CC-FPSE training parts: FPSE discriminator and losses (tiny configurations)."""

from __future__ import annotations

import pytest
import torch

from training.ccfpse import (
    FPSEDiscriminator,
    FPSEOutput,
    feature_matching_loss,
    hinge_loss,
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


def test_hinge_and_feature_matching_closed_forms():
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


