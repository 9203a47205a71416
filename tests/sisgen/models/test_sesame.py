"""SESAME generator: the hole contract, the official layout and its configuration options."""

from __future__ import annotations

import pytest
import torch

from sisgen.models import build_model
from sisgen.models.sesame import SESAMEGenerator


def _tiny(**overrides) -> SESAMEGenerator:
    torch.manual_seed(0)
    return build_model("sesame", dataset="tiny", **overrides).eval()


def test_example_inputs_are_labels_photo_and_box_mask():
    g = _tiny()
    assert g.input_names == ("labels", "edges", "noise", "image", "mask")
    labels, edges, noise, image, mask = g.example_inputs(batch_size=3, seed=4)
    assert edges is None and noise is None and g.noise_shape() == ()
    assert image.shape == (3, 3, 64, 64) and image.abs().max() <= 1
    assert mask.shape == (3, 1, 64, 64) and set(mask.unique().tolist()) <= {0.0, 1.0}
    for m in mask[:, 0]:  # one box per sample, a quarter to a half of each side
        rows, cols = m.any(1).nonzero(), m.any(0).nonzero()
        h, w = len(rows), len(cols)
        assert 16 <= h <= 32 and 16 <= w <= 32 and m.sum() == h * w
    again = g.example_inputs(batch_size=3, seed=4)
    assert torch.equal(again[3], image) and torch.equal(again[4], mask)


def test_pixels_outside_the_hole_are_the_photo_and_inside_are_never_read():
    g = _tiny()
    labels, _, _, image, mask = g.example_inputs(batch_size=2)
    with torch.no_grad():
        out = g(labels, image=image, mask=mask)
        keep = mask == 0
        assert torch.equal(out.expand(-1, 3, -1, -1)[keep.expand(-1, 3, -1, -1)],
                           image[keep.expand(-1, 3, -1, -1)])
        other = torch.where(mask.bool(), torch.rand_like(image), image)
        assert torch.equal(g(labels, image=other, mask=mask), out)
        # the raw output differs from the composite outside the hole
        raw = _tiny(composite=False)(labels, image=image, mask=mask)
        assert not torch.equal(raw, out)


def test_without_photo_and_mask_the_whole_frame_is_generated():
    g = _tiny()
    labels = g.example_inputs()[0]
    with torch.no_grad():
        a = g(labels)
        b = g(labels, image=torch.zeros(1, 3, 64, 64), mask=torch.ones(1, 1, 64, 64))
    assert torch.equal(a, b) and a.shape == (1, 3, 64, 64)


def test_segmentation_mask_hides_labels_outside_the_hole():
    labels, _, _, image, mask = _tiny().example_inputs(batch_size=1)
    relabel = torch.where(mask[:, 0].bool(), labels, (labels + 1) % 5)
    with torch.no_grad():
        g = _tiny(segmentation_mask=True)
        assert torch.equal(g(labels, image=image, mask=mask), g(relabel, image=image, mask=mask))
        g = _tiny(segmentation_mask=False)
        assert not torch.equal(g(labels, image=image, mask=mask),
                               g(relabel, image=image, mask=mask))


def test_condition_channels_and_official_label_channels():
    g = _tiny(dontcare=True, use_edges=True)
    labels, edges, _, _, mask = g.example_inputs(batch_size=1)
    labels[0, 0, 0] = 255
    seg = g.condition(labels, edges, mask)
    assert seg.shape[1] == g.semantic_nc == 5 + 1 + 1 + 1  # classes, dontcare, edge, hole
    assert seg[0, 5, 0, 0] == 1 and torch.equal(seg[:, -1:], mask)
    with pytest.raises(ValueError, match="edges"):
        g(labels, None, None, None, mask)
    city = build_model("sesame", dataset="cityscapes")
    assert city.label_nc == 35 and city.num_classes == 34 and city.semantic_nc == 36
    assert city.segmentation_mask and not city.uses_edges and not city.skip_connections
    assert sum(p.numel() for p in city.parameters()) == 20_489_091  # official module's count
    coco = build_model("sesame", dataset="coco_stuff")
    assert coco.semantic_nc == 182 + 1 + 1


def test_official_layout_dilations_and_widths():
    g = _tiny()
    first = g.init_block[1][0]
    assert first.kernel_size == (7, 7) and first.bias is None and first.in_channels == 3 + 6
    assert [d[0][0].stride for d in g.downlayers] == [(2, 2), (2, 2)]
    assert [b.conv_block[1][0].dilation for b in g.resnet_core] == [(1, 1)] + [(2, 2)] * 3
    assert [b.conv_0.dilation for b in g.spade_core] == [(2, 2)] * 4 + [(1, 1)]
    assert [(b.conv_0.in_channels, b.conv_1.out_channels) for b in g.uplayers] == [(16, 8),
                                                                                   (8, 4)]
    assert all(hasattr(b.conv_0, "parametrizations") for b in g.spade_core)


def test_skip_connections_variant_runs_and_trains():
    g = _tiny(skip_connections=True, use_edges=True).train()
    assert g.spade_core[-1].conv_0.in_channels == 2 * 16
    assert g.uplayers[0].conv_0.in_channels == 16 + 8
    assert g.conv_img.in_channels == 4 + 3 + g.semantic_nc
    labels, edges, _, image, mask = g.example_inputs(batch_size=2)
    out = g(labels, edges, None, image, mask)
    out.square().mean().backward()
    assert out.shape == (2, 3, 64, 64)
    assert all(p.grad is not None for p in g.parameters())


def test_invalid_arguments():
    with pytest.raises(ValueError, match="multiples"):
        SESAMEGenerator(num_classes=5, height=62, width=64)
    with pytest.raises(ValueError, match="label_nc"):
        SESAMEGenerator(num_classes=5, label_nc=4)
    with pytest.raises(ValueError, match="labels"):
        _tiny()(torch.zeros(1, 1, 64, 64, dtype=torch.long))
