"""LGGAN: the local class-specific branch, the weight-map fusion and the dataset configs."""

from __future__ import annotations

import pytest
import torch

from sisgen.models import build_model
from sisgen.models.lggan import LGGANGenerator

SMALL = {"ngf": 4, "spade_hidden": 8, "n_blocks": 1}


def _gen(**kw) -> LGGANGenerator:
    torch.manual_seed(0)
    args = dict(num_classes=5, height=32, width=32, use_edges=False,
                num_upsampling_layers="normal", **SMALL)
    args.update(kw)
    return LGGANGenerator(**args).eval()


def _halves(b: int = 1, size: int = 32) -> torch.Tensor:
    """Class 0 on the left half, class 1 on the right half: ``[B,H,W]``."""
    labels = torch.zeros(b, size, size, dtype=torch.long)
    labels[:, :, size // 2:] = 1
    return labels


def test_forward_all_parts_and_fusion():
    g = _gen()
    labels = torch.randint(0, 5, (2, 4, 4)).repeat_interleave(8, 1).repeat_interleave(8, 2)
    with torch.no_grad():
        out = g.forward_all(labels)
        image = g(labels)
    assert out.class_images.shape == (2, 5, 3, 32, 32)
    assert out.class_masks.shape == (2, 5, 32, 32)
    assert out.class_features.shape == (2, 5, 4)
    assert out.attention.shape == (2, 2, 32, 32)
    torch.testing.assert_close(out.attention.sum(1), torch.ones(2, 32, 32))
    fused = out.attention[:, :1] * out.local_image + out.attention[:, 1:] * out.global_image
    torch.testing.assert_close(out.image, fused)
    torch.testing.assert_close(image, out.image)
    # each pixel drives exactly one sub-generator
    torch.testing.assert_close(out.class_masks.sum(1), torch.ones(2, 32, 32))


def test_sub_generator_sees_only_its_class():
    g = _gen()
    with torch.no_grad():
        out = g.forward_all(_halves())
    for k in (0, 2, 3):  # away from class k's pixels its sub-generator outputs tanh(bias_k)
        const = torch.tanh(g.deconv5[k].bias).view(3, 1, 1).expand(3, 32, 32)
        img = out.class_images[0, k]
        if k == 0:  # class 0 is the left half: the 7x7 kernel reaches 3 px into the right
            img, const = img[:, :, 16 + 3:], const[:, :, 16 + 3:]
        torch.testing.assert_close(img, const)
    # an absent class has zero pooled feature; a present one does not
    assert out.class_features[0, 2].abs().sum() == 0
    assert out.class_features[0, 1].abs().sum() > 0


def test_sub_generators_are_class_specific():
    """Changing class 1's conv changes only class 1's image (and the fused results)."""
    g = _gen()
    labels = _halves()
    with torch.no_grad():
        a = g.forward_all(labels)
        g.deconv5[1].weight.add_(0.5)
        b = g.forward_all(labels)
    assert torch.equal(a.class_images[:, 0], b.class_images[:, 0])
    assert not torch.equal(a.class_images[:, 1], b.class_images[:, 1])
    assert torch.equal(a.global_image, b.global_image)
    assert not torch.equal(a.local_image, b.local_image)


def test_grouped_local_classes_merge_the_tail():
    g = _gen(num_classes=6, num_local_classes=3)
    assert len(g.deconv5) == 3 and g.deconv9.in_channels == 9
    assert g.num_classifier_classes == 2
    labels = torch.arange(6).view(1, 6, 1).expand(1, 6, 32)
    labels = labels.repeat_interleave(6, 1)[:, :32].contiguous()  # 6 horizontal bands
    with torch.no_grad():
        masks = g.forward_all(labels).class_masks
    assert torch.equal(masks[0, 0], (labels[0] == 0).float())
    assert torch.equal(masks[0, 1], (labels[0] == 1).float())
    assert torch.equal(masks[0, 2], (labels[0] >= 2).float())
    with pytest.raises(ValueError, match="num_local_classes"):
        _gen(num_local_classes=1)


def test_dontcare_and_edges_enter_the_encoder_not_the_local_branch():
    g = _gen(dontcare=True, use_edges=True)
    assert g.conv1.in_channels == 5 + 1 + 1 and len(g.deconv5) == 5
    labels = _halves()
    labels[:, :8] = 255
    edges = torch.zeros(1, 1, 32, 32)
    with torch.no_grad():
        out = g.forward_all(labels, edges)
        other = g.forward_all(labels, edges + 1)
    assert out.class_masks[:, :, :8].sum() == 0  # ignore pixels drive no sub-generator
    assert not torch.equal(out.image, other.image)  # edges are read
    with pytest.raises(ValueError, match="edges"):
        g(labels)


def test_size_checks():
    with pytest.raises(ValueError, match="multiples"):
        _gen(height=40)
    with pytest.raises(ValueError, match="multiples"):
        _gen(height=32, width=32, num_upsampling_layers="more")


@pytest.mark.parametrize("dataset, in_nc, local, ups, classifier", [
    ("cityscapes", 35 + 1, 35, "more", 35),  # official: 35 label channels + edge
    ("ade20k", 151, 52, "normal", 51),  # official ADE20K: classes 0..50 + "the rest"
    ("coco_stuff", 182 + 1 + 1, 52, "normal", 51),
])
def test_dataset_configurations(dataset, in_nc, local, ups, classifier):
    g = build_model("lggan", dataset=dataset, **SMALL)
    assert g.conv1.in_channels == in_nc
    assert len(g.deconv5) == local and g.deconv9.in_channels == 3 * local
    assert g.num_upsampling_layers == ups
    assert g.num_classifier_classes == classifier
