"""SPADE family specifics: paper configs, CLADE edge channel, CLADE-ICPE, VASIS norms, encoder."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from sisgen.models import build_model
from sisgen.models.encoder import ConvEncoder, reparameterize
from sisgen.models.layers import CLADE, SPADE, intra_class_position_map
from sisgen.models.vasis import (
    VariationAwareCLADE,
    VariationAwareSPADE,
    layer_noise,
    norm_factory,
    parse_position,
    relative_position_map,
    uniform_noise,
    vasis_norm,
)

SMALL = dict(ngf=2, spade_hidden=4)


def _seg(labels: torch.Tensor, n: int) -> torch.Tensor:
    return (labels.unsqueeze(1) == torch.arange(n).view(1, n, 1, 1)).float()


# ------------------------------------------------------------------------ paper configs
@pytest.mark.parametrize("dataset,classes,seg_nc", [("cityscapes", 35, 36), ("ade20k", 151, 151),
                                                     ("coco_stuff", 182, 184)])
def test_official_label_channels(dataset, classes, seg_nc):
    m = build_model("spade", dataset=dataset, **SMALL)
    assert m.num_classes == classes and m.config["z_dim"] == 0  # paper model: no z / VAE
    assert m.fc.in_channels == seg_nc and m.noise_shape() == ()
    assert m.head_0.norm_0.mlp_shared[0].in_channels == seg_nc


def test_clade_edge_channel_widens_the_convs():
    m = build_model("clade", dataset="tiny")
    blk = m.up_0  # 16*ngf -> 8*ngf, learned shortcut
    fin = 16 * m.ngf
    assert blk.conv_0.in_channels == fin + 1 and blk.conv_s.in_channels == fin + 1
    assert blk.conv_1.in_channels == 8 * m.ngf + 1
    assert isinstance(blk.norm_0, CLADE) and blk.norm_0.inst_conv is not None
    m2 = build_model("clade", dataset="tiny", use_edges=False)
    assert m2.up_0.conv_0.in_channels == fin and m2.up_0.norm_0.inst_conv is None


def test_va_models_use_vasis_norms_and_reflect_padding():
    s = build_model("va_spade", dataset="tiny")
    c = build_model("va_clade", dataset="tiny")
    assert isinstance(s.head_0.norm_0, VariationAwareSPADE)
    assert isinstance(c.head_0.norm_0, VariationAwareCLADE)
    assert s.config["padding_mode"] == "reflect" and s.fc.padding_mode == "reflect"
    assert s.noise_shape() == (2, 64, 64) and s.noise_spec()["shape"] == [2, 64, 64]
    # learnable position codes sit at each block's resolution
    assert tuple(s.head_0.norm_0.gamma_pos_learn.shape) == (2, 2, 2)
    assert tuple(s.up_3.norm_1.gamma_pos_learn.shape) == (2, 64, 64)


@pytest.mark.parametrize("name", ["va_spade", "va_clade"])
def test_va_most_upsampling_position_sizes(name):
    m = build_model(name, dataset="tiny", height=256, width=256, num_upsampling_layers="most")
    assert tuple(m.up_4.norm_0.gamma_pos_learn.shape) == (2, 256, 256)
    with torch.no_grad():
        out = m.eval()(*m.example_inputs(1))
    assert out.shape == (1, 3, 256, 256)


def test_semantic_noise_changes_image_and_errors():
    m = build_model("va_clade", dataset="tiny").eval()
    labels, edges, noise = m.example_inputs(1)
    with torch.no_grad():
        a, b = m(labels, edges, noise), m(labels, edges, m.sample_noise([5]))
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="noise"):
        m(labels, edges, None)
    with pytest.raises(ValueError, match="z_dim=0"):
        build_model("va_spade", dataset="tiny", z_dim=8)
    with pytest.raises(ValueError, match="icpe"):
        build_model("spade", dataset="tiny", icpe=True)


# ------------------------------------------------------------------------------- ICPE
def test_relative_position_map_closed_form():
    labels = torch.zeros(1, 3, 5, dtype=torch.long)
    labels[0, 1, :] = 1  # class 1: one row of 5 pixels, centroid (1, 2)
    labels[0, :, 4] = 2  # class 2: right column
    labels[0, 1, 4] = 1
    d = relative_position_map(_seg(labels, 3))
    assert d.shape == (1, 2, 3, 5)
    assert torch.allclose(d[0, 1, 1], torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0]), atol=1e-4)
    assert torch.allclose(d[0, 0, 1], torch.zeros(5))  # on the centroid row
    assert torch.allclose(d[0, 0, :, 4], torch.tensor([-1.0, 0.0, 1.0]), atol=1e-4)
    assert d.abs().max() <= 1.0
    # pixels of no class (ignore) get 0
    assert relative_position_map(torch.zeros(1, 3, 4, 4)).abs().max() == 0


def test_clade_icpe_uses_the_position_map():
    layer = CLADE(3, num_labels=2, norm="none", icpe=True)
    x, labels = torch.ones(1, 3, 4, 4), torch.zeros(1, 1, 4, 4, dtype=torch.long)
    dist = torch.randn(1, 2, 4, 4)
    base = layer(x, torch.zeros(1, 2, 4, 4), labels, dist=dist)
    with torch.no_grad():
        layer.dist_conv_w.weight.fill_(1.0)
    moved = layer(x, torch.zeros(1, 2, 4, 4), labels, dist=dist)
    expect = layer.weight[0].view(1, 3, 1, 1) * (1 + dist.sum(1, keepdim=True))
    assert torch.allclose(moved - layer.bias[0].view(1, 3, 1, 1) * 1, expect, atol=1e-5)
    assert not torch.allclose(base, moved)
    with pytest.raises(ValueError, match="dist"):
        layer(x, torch.zeros(1, 2, 4, 4), labels)


def test_clade_icpe_model_depends_on_intra_class_position():
    m = build_model("clade_icpe", dataset="tiny").eval()
    assert m.needs_dist and m.head_0.norm_0.icpe
    assert m.input_names == ("labels", "edges", "noise", "instances")
    assert build_model("clade", dataset="tiny").input_names == ("labels", "edges", "noise")
    for mod in m.modules():  # make the ICPE convs matter
        if isinstance(mod, CLADE):
            torch.nn.init.constant_(mod.dist_conv_w.weight, 0.5)
    labels, edges, noise, instances = m.example_inputs(1)
    assert noise is None and instances.dtype == torch.long and (instances > 0).any()
    with torch.no_grad():
        out = m(labels, edges, None, instances)
        ref = build_model("clade", dataset="tiny")
        ref.load_state_dict({k: v for k, v in m.state_dict().items() if "dist_conv" not in k})
        assert not torch.allclose(out, ref.eval()(labels, edges))
        # per instance, not per class region; an all-zero map is the class-region map
        regions = m(labels, edges)
        assert not torch.allclose(out, regions)
        assert torch.equal(regions, m(labels, edges, None, torch.zeros_like(labels)))


# ------------------------------------------------------------------------ VASIS layers
def test_layer_noise_space_to_depth_and_cycling():
    z = torch.arange(2 * 4 * 4, dtype=torch.float32).view(1, 2, 4, 4)
    n = layer_noise(z, 8, (2, 2))
    assert n.shape == (1, 8, 2, 2)
    assert sorted(n.flatten().tolist()) == sorted(z.flatten().tolist())  # each value once
    assert n[0, 0, 0, 0] == z[0, 0, 0, 0] and n[0, 1, 0, 0] == z[0, 0, 0, 1]
    cyc = layer_noise(z, 11, (2, 2))
    assert torch.equal(cyc[:, 8:], cyc[:, :3])
    assert torch.equal(layer_noise(z, 2, (4, 4)), z)


@pytest.mark.parametrize("noise,seg_nc,table_nc", [("semantic", 4, 4), ("one_channel", 4, 1),
                                                   ("plus", 8, 8), ("rand", 4, None),
                                                   (None, 8, None)])
@pytest.mark.parametrize("kind", ["spade", "clade"])
def test_vasis_noise_switches(kind, noise, seg_nc, table_nc):
    layer = vasis_norm(kind, 8, 5, 5, size=(4, 4), noise=noise, position=None)
    assert layer.seg_nc == seg_nc
    tab = getattr(layer, "gamma_noise_gamma", None)
    assert (tab is None) if table_nc is None else tuple(tab.shape) == (5, table_nc)
    labels = torch.randint(0, 4, (2, 1, 8, 8))
    seg = torch.cat([_seg(labels[:, 0], 4), torch.zeros(2, 1, 8, 8)], 1)
    z1, z2 = torch.randn(2, 3, 8, 8), torch.randn(2, 3, 8, 8)
    x = torch.randn(2, 8, 4, 4)
    a, b = layer(x, seg, labels, noise=z1), layer(x, seg, labels, noise=z2)
    assert a.shape == (2, 8, 4, 4)
    assert torch.equal(a, layer(x, seg, labels, noise=z1))
    assert torch.equal(a, b) == (noise is None)


def test_semantic_noise_is_a_per_class_affine():
    layer = vasis_norm("clade", 4, 3, 3, norm="none", noise="semantic", position=None)
    with torch.no_grad():
        for p in (layer.gamma_seg, layer.beta_seg, layer.gamma_noise_gamma,
                  layer.gamma_noise_beta, layer.beta_noise_gamma, layer.beta_noise_beta):
            p.copy_(torch.randn_like(p))
    labels = torch.tensor([[[[0, 2]]]])
    x, z = torch.randn(1, 4, 1, 2), torch.randn(1, 4, 1, 2)
    out = layer(x, torch.zeros(1, 3, 1, 2), labels, noise=z)
    n = uniform_noise(layer_noise(z, 4, (1, 2)))  # official: torch.rand, uniform [0, 1)
    assert 0 < n.min() and n.max() < 1
    for j, k in enumerate((0, 2)):
        g = torch.cat([layer.gamma_seg[k], n[0, :2, 0, j] * layer.gamma_noise_gamma[k]
                       + layer.gamma_noise_beta[k]])
        bt = torch.cat([layer.beta_seg[k], n[0, 2:, 0, j] * layer.beta_noise_gamma[k]
                        + layer.beta_noise_beta[k]])
        assert torch.allclose(out[0, :, 0, j], x[0, :, 0, j] * g + bt, atol=1e-6)


@pytest.mark.parametrize("position", ["learnable", "absolute", "relative"])
def test_position_codes(position):
    layer = vasis_norm("spade", 6, 4, 4, size=(4, 4), noise=None, position=position)
    x, seg = torch.randn(1, 6, 4, 4), torch.rand(1, 4, 8, 8)
    dist = relative_position_map(seg)
    out = layer(x, seg, dist=dist)
    assert out.shape == (1, 6, 4, 4)
    with torch.no_grad():
        layer.conv_pos_gamma.weight.fill_(1.0)
    assert not torch.allclose(out, layer(x, seg, dist=dist))
    if position == "learnable":
        assert isinstance(layer.gamma_pos_learn, torch.nn.Parameter)
    if position == "absolute":
        assert "pos_code" not in layer.state_dict()  # fixed, not a weight
    if position == "relative":
        with pytest.raises(ValueError, match="relative"):
            layer(x, seg)
    with pytest.raises(ValueError, match="size"):
        vasis_norm("clade", 6, 4, 4, noise=None, position="learnable")


def test_norm_factory_and_argmax_fallback():
    make = norm_factory(seg_channels=6, num_labels=6, kind="spade", norm="instance",
                        hidden=8, position=None)
    layer = make(4)
    assert isinstance(layer, VariationAwareSPADE) and layer.mlp_shared[0].in_channels == 6
    seg = _seg(torch.randint(0, 6, (1, 8, 8)), 6)
    out = layer(torch.randn(1, 4, 8, 8), seg, None, noise=torch.randn(1, 2, 8, 8))
    assert out.shape == (1, 4, 8, 8)
    assert isinstance(SPADE(4, 6), torch.nn.Module)


# ----------------------------------------------------------------------------- encoder
def test_encoder_feeds_a_z_generator():
    enc = ConvEncoder(ngf=2, z_dim=8)
    g = build_model("spade", dataset="tiny", z_dim=8)
    mu, logvar = enc(torch.rand(2, 3, 64, 64) * 2 - 1)  # resized to 256 inside
    assert mu.shape == logvar.shape == (2, 8) and enc.num_layers == 6 and enc.s0 == 4
    z = reparameterize(mu, logvar, torch.zeros_like(mu))
    assert torch.equal(z, mu)
    labels, edges, _ = g.example_inputs(2)
    assert g(labels, edges, z).shape == (2, 3, 64, 64)
    names = {n for n, _ in g.named_parameters()}
    assert not any(n.startswith(("layer", "fc_mu", "fc_var")) for n in names)
    assert "layer1.0.parametrizations.weight.original" in dict(enc.named_parameters())
    assert ConvEncoder(ngf=2, z_dim=8, input_size=128).num_layers == 5


# ------------------------------------------------------------------- ICPE per instance
def _official_icpe(labels: np.ndarray) -> np.ndarray:
    """The official definition: per 8-connected component of each class, centroid offsets
    over the largest absolute offset + 1e-5 (label 0 skipped), written from the paper."""
    out = np.zeros((2, *labels.shape), np.float64)
    ys, xs = np.mgrid[:labels.shape[0], :labels.shape[1]]
    for c in np.unique(labels):
        if c == 0:
            continue
        n, comp, _, centroids = cv2.connectedComponentsWithStats(
            (labels == c).astype(np.uint8), connectivity=8)
        for k in range(1, n):
            on = comp == k
            for ch, (coord, centre) in enumerate(((ys, centroids[k][1]), (xs, centroids[k][0]))):
                off = (coord - centre) * on
                out[ch] += off / (np.abs(off).max() + 1e-5)
    return out


def test_intra_class_position_map_matches_the_official_components():
    # two touching-free cars (class 3) are two components and two instances; the road
    # (class 1) and the sky (class 2) are one component each; class 0 has no map (official)
    labels = np.full((12, 20), 1, np.int64)
    labels[:4] = 2
    labels[6:9, 2:6] = 3
    labels[5:11, 10:17] = 3
    labels[0, 0] = 0
    instances = np.zeros_like(labels)
    instances[6:9, 2:6] = 7
    instances[5:11, 10:17] = 2
    ref = _official_icpe(labels)
    got = intra_class_position_map(torch.from_numpy(labels)[None],
                                   torch.from_numpy(instances)[None], num_classes=4)[0]
    on = torch.from_numpy(labels != 0)
    assert torch.allclose(got[:, on], torch.from_numpy(ref).float()[:, on], atol=1e-5)
    assert got.abs().max() <= 1.0
    # without instances the two cars are one region: centroid between them
    merged = intra_class_position_map(torch.from_numpy(labels)[None], None, 4)[0]
    assert not torch.allclose(merged[:, 7, 3], got[:, 7, 3])


def test_intra_class_position_map_ignores_unlabeled_and_uses_instance_regions():
    labels = torch.tensor([[[1, 1, 1, 255], [1, 1, 1, 255]]])
    instances = torch.tensor([[[0, 4, 4, 9], [0, 4, 4, 9]]])
    d = intra_class_position_map(labels, instances, num_classes=2)
    assert torch.all(d[..., 3] == 0)  # ignore pixels: 0, even with an instance id
    assert torch.allclose(d[0, 1, 0, 1:3], torch.tensor([-1.0, 1.0]), atol=1e-4)  # instance 4
    # the stuff column is its own region: centred in x, rows -1 / +1 in y
    assert torch.all(d[0, 1, :, 0] == 0) and torch.allclose(d[0, 0, :, 0], torch.tensor(
        [-1.0, 1.0]), atol=1e-4)
    # ids are taken modulo H*W: 4 and 4 + 8 are one instance, as documented
    assert torch.equal(d, intra_class_position_map(labels, instances + 8 * (instances == 4),
                                                   num_classes=2))
    # relative_position_map (one-hot input) is the class-region map
    onehot = (labels.unsqueeze(1) == torch.arange(2).view(1, 2, 1, 1)).float()
    assert torch.allclose(relative_position_map(onehot),
                          intra_class_position_map(labels, None, 2))


# ------------------------------------------------------------------ VASIS position codes
def test_position_code_switches():
    assert parse_position("relative+absolute") == ("absolute", "relative")
    assert parse_position(None) == ()
    for bad in ("fix", "learnable+learnable", "learnable+"):
        with pytest.raises(ValueError, match="position code"):
            parse_position(bad)
    mixed = vasis_norm("clade", 6, 4, 4, size=(4, 4), noise=None,
                       position="learnable+absolute+relative", position_channels="one")
    assert mixed.position == "absolute+learnable+relative"
    assert tuple(mixed.conv_pos_gamma.weight.shape) == (1, 6, 1, 1)  # 3 codes, one factor
    full = vasis_norm("spade", 6, 4, 4, size=(4, 4), noise="semantic", position="absolute")
    assert tuple(full.conv_pos_beta.weight.shape) == (3, 2, 1, 1)  # seg_nc = 6 // 2
    labels = torch.randint(0, 4, (2, 8, 8))
    seg, dist = _seg(labels, 4), relative_position_map(_seg(labels, 4))
    x = torch.randn(2, 6, 4, 4)
    out = mixed(x, seg, labels.unsqueeze(1), dist=dist)
    with torch.no_grad():  # a one-channel code scales every channel by the same factor
        mixed.conv_pos_gamma.weight.zero_()
        mixed.conv_pos_gamma.bias.fill_(1.0)
        mixed.conv_pos_beta.weight.zero_()
        mixed.conv_pos_beta.bias.zero_()
    idx = labels[:, ::2, ::2]
    plain = x * mixed.gamma_seg[idx].permute(0, 3, 1, 2) + mixed.beta_seg[idx].permute(0, 3, 1, 2)
    scaled = x * 2 * mixed.gamma_seg[idx].permute(0, 3, 1, 2) + mixed.beta_seg[idx].permute(
        0, 3, 1, 2)
    mixed.param_free_norm = torch.nn.Identity()
    assert torch.allclose(mixed(x, seg, labels.unsqueeze(1), dist=dist), scaled, atol=1e-6)
    assert out.shape == plain.shape
    with pytest.raises(ValueError, match="relative"):
        mixed(x, seg, labels.unsqueeze(1))


def test_rand_noise_is_plain_uniform_noise():
    layer = vasis_norm("clade", 4, 3, 3, norm="none", noise="rand", position=None)
    labels, x, z = torch.tensor([[[[0, 2]]]]), torch.randn(1, 4, 1, 2), torch.randn(1, 4, 1, 2)
    out = layer(x, torch.zeros(1, 3, 1, 2), labels, noise=z)
    u = uniform_noise(layer_noise(z, 4, (1, 2)))
    gamma = torch.cat([layer.gamma_seg[[0, 2]].T.unsqueeze(0).unsqueeze(2), u[:, :2]], 1)
    beta = torch.cat([layer.beta_seg[[0, 2]].T.unsqueeze(0).unsqueeze(2), u[:, 2:]], 1)
    assert torch.allclose(out, x * gamma + beta, atol=1e-6)
    assert torch.allclose(uniform_noise(torch.tensor([0.0, -10.0, 10.0])),
                          torch.tensor([0.5, 0.0, 1.0]))


def test_mixed_position_model_takes_instances():
    m = build_model("va_clade", dataset="tiny", position_code="absolute+learnable+relative",
                    position_channels="one").eval()
    assert m.needs_dist and m.input_names[-1] == "instances"
    assert tuple(m.up_3.norm_0.conv_pos_gamma.weight.shape) == (1, 6, 1, 1)
    labels, edges, noise, instances = m.example_inputs(2)
    with torch.no_grad():
        for mod in m.modules():  # make the relative code matter
            if hasattr(mod, "conv_pos_gamma"):
                mod.conv_pos_gamma.weight.fill_(0.5)
        a = m(labels, edges, noise, instances)
        b = m(labels, edges, noise)  # class regions instead of instances
    assert a.shape == (2, 3, 64, 64) and not torch.allclose(a, b)
