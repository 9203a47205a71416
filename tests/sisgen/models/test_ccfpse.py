"""CC-FPSE generator: predicted-kernel convolution, label layout, pyramid, configurations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from sisgen.models import build_model
from sisgen.models.ccfpse import CCFPSEGenerator, DepthsepCCBlock, predicted_depthwise_conv
from sisgen.models.registry import DATASETS, dataset_spec


def _unfold_reference(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """The official formulation: unfold, multiply by the per-pixel kernels, sum."""
    b, c, h, wd = x.shape
    cols = F.unfold(x, kernel_size=3, padding=1).view(b * c, 9, h, wd)
    return (cols * w.view(b * c, 9, h, wd)).sum(1).view(b, c, h, wd)


def test_predicted_conv_matches_unfold_and_grouped_conv():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 5, 7, generator=g)
    w = torch.randn(2, 27, 5, 7, generator=g)
    torch.testing.assert_close(predicted_depthwise_conv(x, w), _unfold_reference(x, w))
    # a kernel constant over the image is an ordinary depthwise conv
    k = torch.randn(3, 1, 3, 3, generator=g)
    wc = k.view(1, 27, 1, 1).expand(2, 27, 5, 7)
    torch.testing.assert_close(predicted_depthwise_conv(x, wc),
                               F.conv2d(x, k, padding=1, groups=3))


def test_block_kernels_follow_the_layout():
    """Two pixels with the same input feature but different labels get different outputs."""
    torch.manual_seed(0)
    blk = DepthsepCCBlock(4, 4, cond_channels=3, hidden=8).eval()
    x = torch.ones(1, 4, 8, 8)
    cond = torch.zeros(1, 3, 8, 8)
    cond[:, 0, :, :4] = 1
    cond[:, 1, :, 4:] = 1
    with torch.no_grad():
        out = blk(x, cond)
    assert out.shape == (1, 4, 8, 8)
    assert not torch.allclose(out[..., 3:5, 1], out[..., 3:5, 6])
    # a wider input gets the SPADE shortcut, narrower output
    assert hasattr(DepthsepCCBlock(8, 4, 3, hidden=8), "norm_s")
    with pytest.raises(ValueError):
        DepthsepCCBlock(4, 8, 3)


def test_semantic_channels_padding_dontcare_and_edges():
    g = CCFPSEGenerator(num_classes=3, height=32, width=32, ngf=2, z_dim=4, use_edges=True,
                        dontcare=True, label_nc=5, hidden=4)
    labels = torch.tensor([[[0, 2], [255, 1]]])
    edges = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])
    seg = g.condition(labels, edges)
    assert seg.shape == (1, 7, 2, 2)  # 5 class channels + dontcare + edge
    assert seg[0, :5].sum() == 3 and seg[0, 3:5].sum() == 0  # padded channels stay zero
    assert seg[0, 5, 1, 0] == 1 and seg[0, 5].sum() == 1  # ignore -> dontcare channel
    assert torch.equal(seg[0, 6], edges[0, 0])
    with pytest.raises(ValueError, match="edges"):
        g.condition(labels, None)


def test_zero_is_dontcare_official_ade20k_layout():
    g = CCFPSEGenerator(num_classes=4, height=32, width=32, ngf=2, z_dim=4, use_edges=False,
                        dontcare=True, zero_is_dontcare=True, hidden=4)
    assert g.label_nc == 3
    seg = g.condition(torch.tensor([[[0, 1, 3, 255]]]), None)  # [1,4,1,4]
    assert seg[0, :, 0].argmax(0).tolist() == [3, 0, 2, 3]  # 0 and ignore -> last channel
    assert seg.sum() == 4
    with pytest.raises(ValueError, match="dontcare"):
        CCFPSEGenerator(num_classes=4, dontcare=False, zero_is_dontcare=True)


@pytest.mark.parametrize("mode,levels", [("normal", 6), ("more", 7)])
def test_layout_pyramid_matches_decoder_scales(mode, levels):
    torch.manual_seed(0)
    g = CCFPSEGenerator(num_classes=5, height=64, width=128, ngf=4, z_dim=8, hidden=8,
                        num_upsampling_layers=mode).eval()
    labels, edges, noise = g.example_inputs(batch_size=1)
    pyr = g.layout_pyramid(g.condition(labels, edges))
    assert len(pyr) == levels
    for k, t in enumerate(pyr):
        assert t.shape == (1, 4, g.sh * 2**k, g.sw * 2**k)
    assert hasattr(g, f"labelenc{levels}") and not hasattr(g, f"labelenc{levels + 1}")
    with torch.no_grad():
        out = g(labels, edges, noise)
    assert out.shape == (1, 3, 64, 128)


def test_deterministic_mode_and_noise_checks():
    torch.manual_seed(0)
    g = CCFPSEGenerator(num_classes=5, height=32, width=32, ngf=2, z_dim=0, hidden=4).eval()
    assert g.noise_shape() == () and isinstance(g.fc, torch.nn.Conv2d)
    labels, edges, noise = g.example_inputs(batch_size=2)
    assert noise is None
    with torch.no_grad():
        assert torch.equal(g(labels, edges), g(labels, edges))
    gz = build_model("ccfpse", dataset="tiny").eval()
    labels, edges, _ = gz.example_inputs()
    with pytest.raises(ValueError, match="noise"):
        gz(labels, edges, None)
    with pytest.raises(ValueError, match="multiples"):
        CCFPSEGenerator(num_classes=5, height=48, width=64, num_upsampling_layers="more")


def test_official_initialization():
    torch.manual_seed(0)
    g = build_model("ccfpse", dataset="tiny")
    bn = g.head_0.norm_1
    assert bn.bias.abs().sum() == 0 and (bn.weight - 1).abs().max() < 0.2
    assert g.conv_img.bias.abs().sum() == 0
    assert g.labelenc1[0][0].parametrizations.weight.original.std() < 0.05


@pytest.mark.parametrize("dataset,label_nc,edges,dontcare,more", [
    ("cityscapes", 35, True, False, True),
    ("ade20k", 150, False, True, False),
    ("coco_stuff", 182, True, True, False),
])
def test_paper_configurations(dataset, label_nc, edges, dontcare, more):
    from sisgen.models.ccfpse import ccfpse

    spec, vocab = dataset_spec(dataset)
    # the official widths shrunk (ngf=1) so that building stays cheap; the layout is kept
    g = ccfpse(spec, vocab, ngf=1, hidden=1, z_dim=2)
    assert g.config["label_nc"] == label_nc
    assert (g.use_edges, g.dontcare, g.more) == (edges, dontcare, more)
    assert g.resolution == (DATASETS[dataset].height, DATASETS[dataset].width)
    first = g.labelenc1[0][0].parametrizations.weight.original
    assert first.shape[1] == label_nc + int(dontcare) + int(edges)
    assert (g.sh, g.sw) == ((4, 8) if more else (8, 8))
