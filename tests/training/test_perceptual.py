"""The shared VGG19 perceptual loss: layout, torchvision loading, loss, default weight."""

from __future__ import annotations

import pytest
import torch

from sisgen.training.perceptual import VGG19Features, VGGLoss, with_paper_vgg


def test_vgg_layout_and_loss():
    vgg = VGG19Features()
    assert sum(p.numel() for p in vgg.parameters()) == 12_944_960  # vgg19 up to conv5_1
    assert not any(p.requires_grad for p in vgg.parameters())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    feats = vgg(x)
    assert [(f.shape[1], f.shape[-1]) for f in feats] == [(64, 32), (128, 16), (256, 8),
                                                          (512, 4), (512, 2)]
    loss = VGGLoss(vgg)
    assert loss(x, x).item() == 0.0 and loss(x, -x).item() > 0.0
    y = x.clone().requires_grad_(True)
    r = x.clone().requires_grad_(True)
    loss(y, r).backward()
    assert y.grad is not None and r.grad is None  # the real side is detached


def test_torchvision_state_dict_loading():
    vgg = VGG19Features()
    tv = {f"features.{k.split('.', 1)[1]}": v for k, v in vgg.state_dict().items()}
    assert "features.28.weight" in tv and len(tv) == 26
    tv["classifier.0.weight"] = torch.zeros(1)  # the classifier head is ignored
    other = VGG19Features()
    other.load_torchvision_state_dict({k: v + 1 for k, v in tv.items()})
    assert torch.equal(getattr(other.slice5, "28").bias, getattr(vgg.slice5, "28").bias + 1)
    del tv["features.28.bias"]
    with pytest.raises(RuntimeError):
        other.load_torchvision_state_dict(tv)


def test_with_paper_vgg():
    assert with_paper_vgg({"fm": 10.0}, None) == {"fm": 10.0, "vgg": 0.0}
    assert with_paper_vgg({"fm": 10.0}, VGG19Features()) == {"fm": 10.0}
    assert with_paper_vgg({"vgg": 5.0}, None) == {"vgg": 5.0}  # asked for: kept (then an error)
