"""SAFM: the shape-aware position descriptor, the per-pixel depthwise filter, both layouts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from sisgen.models import build_model
from sisgen.models.safm import (
    SAFMGenerator,
    contour_mask,
    depthwise_per_pixel,
    shape_descriptor,
)


def _reference_descriptor(inst: np.ndarray, nbins_r: int = 6, nbins_theta: int = 12,
                          r_inner: float = 0.125, r_outer: float = 2.0) -> np.ndarray:
    """Per-instance loop, binned with atan2 like the paper's code (contours: 4-neighbour)."""
    h, w = inst.shape
    out = np.zeros((nbins_r * nbins_theta, h, w), np.float64)
    contour = contour_mask(torch.from_numpy(inst)[None]).numpy()[0]
    edges = np.logspace(np.log10(r_inner), np.log10(r_outer), nbins_r).astype(np.float32)
    for k in np.unique(inst):
        if k == 0:
            continue
        pts = np.argwhere(inst == k).astype(np.float32)  # [M,2] (row, col)
        con = np.argwhere((inst == k) & contour).astype(np.float32)  # [C,2]
        dx = pts[:, None, 0] - con[None, :, 0]
        dy = -(pts[:, None, 1] - con[None, :, 1])
        r = np.sqrt(dx * dx + dy * dy)
        if r.max() == 0:
            continue
        rn = r / (r.max() / np.float32(2))
        rq = sum((rn <= e).astype(int) for e in edges)
        th = torch.atan2(torch.from_numpy(dx), torch.from_numpy(dy))
        # the reference negates a zero column offset into -0.0: atan2(+0, -0) = pi
        th = torch.where((torch.from_numpy(dx) == 0) & (torch.from_numpy(dy) == 0),
                         torch.full_like(th, math.pi), th)
        th = th + 2 * math.pi * (th < 0).float()
        tq = (1 + torch.floor(th / (2 * math.pi / nbins_theta))).long().numpy()
        for i, (pr, pc) in enumerate(pts.astype(int)):
            for j in range(len(con)):
                if rq[i, j] > 0:
                    out[(rq[i, j] - 1) * nbins_theta + tq[i, j] - 1, pr, pc] += 1
    s = out.sum(0, keepdims=True)
    return out / np.where(s == 0, 1, s)


def test_contour_mask_of_a_square():
    inst = torch.zeros(1, 6, 6, dtype=torch.long)
    inst[0, 1:5, 1:5] = 7
    inst[0, 0, :] = 3  # touches the border: the whole row is contour
    m = contour_mask(inst)[0]
    ring = torch.zeros(6, 6, dtype=torch.bool)
    ring[1:5, 1:5] = True
    ring[2:4, 2:4] = False
    ring[0, :] = True
    assert torch.equal(m, ring)


def test_descriptor_matches_per_instance_reference():
    rng = np.random.default_rng(0)
    inst = np.zeros((12, 14), np.int64)
    inst[1:7, 2:9] = 5
    inst[6:11, 8:13] = 2001  # touches instance 5
    inst[9, 1] = 9  # one pixel: no descriptor (zero radius)
    inst[rng.random(inst.shape) < 0.05] = 0  # holes
    ours = shape_descriptor(torch.from_numpy(inst)[None], max_contour_points=1000)[0]
    ref = _reference_descriptor(inst)
    np.testing.assert_allclose(ours.numpy(), ref, atol=1e-6)
    sums = ours.sum(0)
    assert torch.allclose(sums[torch.from_numpy((inst > 0) & (inst != 9))], torch.tensor(1.0))
    assert sums[torch.from_numpy(inst == 0)].abs().max() == 0
    # chunked evaluation gives the same result
    import sisgen.models.safm as safm_mod

    old = safm_mod._PAIRS_PER_CHUNK
    safm_mod._PAIRS_PER_CHUNK = 7 * 100
    try:
        chunked = shape_descriptor(torch.from_numpy(inst)[None], max_contour_points=100)
    finally:
        safm_mod._PAIRS_PER_CHUNK = old
    assert torch.equal(chunked[0], shape_descriptor(torch.from_numpy(inst)[None], 100)[0])


def test_descriptor_contour_budget_is_respected():
    inst = torch.ones(1, 16, 16, dtype=torch.long)
    full = shape_descriptor(inst, 1000)
    capped = shape_descriptor(inst, 10)  # only the first 10 contour pixels are used
    assert full.shape == capped.shape == (1, 72, 16, 16)
    assert not torch.equal(full, capped)
    assert torch.allclose(capped.sum(1), torch.ones(1, 16, 16))


def test_depthwise_per_pixel_matches_unfold():
    x = torch.randn(2, 3, 5, 6)
    k = torch.randn(2, 27, 5, 6)
    unf = nn.Unfold(3, padding=1)(x).view(2 * 3, 9, 5, 6)
    ref = (unf * k.view(2 * 3, 9, 5, 6)).sum(1).view(2, 3, 5, 6)
    assert torch.allclose(depthwise_per_pixel(x, k), ref, atol=1e-6)


def _layout_model(modulation: str) -> SAFMGenerator:
    torch.manual_seed(0)
    return SAFMGenerator(num_classes=5, height=32, width=64, ngf=2, use_edges=True,
                         label_nc=7, modulation=modulation, num_upsampling_layers="normal",
                         hidden=4, shape_hidden=3, max_contour_points=256)


@pytest.mark.parametrize("modulation", ["safm", "spade"])
def test_layouts_forward_and_every_parameter_learns(modulation, unconnected):
    g = _layout_model(modulation).train()
    labels, edges, noise, instances = g.example_inputs(batch_size=2)
    assert noise is None and g.noise_shape() == ()
    assert g.input_names == ("labels", "edges", "noise", "instances")
    out = g(labels, edges, noise, instances)
    assert out.shape == (2, 3, 32, 64) and out.abs().max() <= 1
    assert not unconnected(g, out.square().mean())
    assert g.fc.in_channels == 7 + 1 + 72  # label_nc + edge + descriptor
    if modulation == "spade":  # one descriptor branch, in the generator
        assert hasattr(g, "gen_weights1") and not hasattr(g.head_0.norm_0, "gen_weights1")
        assert g.head_0.norm_0.mlp_shared[0].in_channels == 8 + 72 + 3
    else:  # one per norm
        assert not hasattr(g, "gen_weights1") and hasattr(g.head_0.norm_0, "gen_weights1")
        assert g.head_0.norm_0.mlp_shared[0].in_channels == 8 + 72 + 3


def test_instance_map_changes_the_descriptor():
    g = _layout_model("safm").eval()
    g.max_contour_points = 384  # every contour pixel of these maps counts
    labels, edges, _, instances = g.example_inputs(batch_size=2)
    assert (instances > 0).any() and (instances == 0).any()
    with torch.no_grad():
        regions = g.descriptor(labels, None)
        zeros = g.descriptor(labels, torch.zeros_like(labels))
        given = g.descriptor(labels, instances)
        a = g(labels, edges, None, instances)
        b = g(labels, edges)
    assert regions.sum(1).min() > 0.99  # class regions: every labelled pixel has one
    assert torch.equal(zeros, regions)  # an all-zero instance map: there was none
    stuff = (instances == 0).unsqueeze(1)
    assert given.masked_select(stuff).abs().max() == 0  # no instance: zero descriptor
    assert given.sum(1)[instances > 0].min() > 0.99
    assert not torch.equal(a, b)
    # per image: only the image without an instance map falls back to class regions
    mixed = instances.clone()
    mixed[1] = 0
    with torch.no_grad():
        m = g.descriptor(labels, mixed)
    assert torch.equal(m[0], given[0]) and torch.equal(m[1], regions[1])
    with pytest.raises(ValueError):
        g(labels, edges, torch.zeros(1, 8))


def test_registered_configurations():
    g = build_model("safm", dataset="tiny")
    assert g.modulation == "safm" and g.max_contour_points == 512
    cfg = SAFMGenerator(num_classes=3, height=64, width=64, ngf=2, hidden=4).config
    assert cfg["modulation"] == "safm" and cfg["label_nc"] is None
    with pytest.raises(ValueError):
        SAFMGenerator(num_classes=3, label_nc=2)
