"""pix2pixHD specifics: official layout, label padding, local enhancers, features, clusters."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sisgen.models import build_model, load_model
from sisgen.models.pix2pixhd import Pix2PixHDGenerator
from sisgen.models.pix2pixhd_encoder import Pix2PixHDEncoder, instance_average
from sisgen.models.style_features import (
    cluster_features,
    encode_features,
    kmeans,
    merge_features,
    object_ids,
    sample_feature_map,
)


def _small(**kw) -> Pix2PixHDGenerator:
    args = dict(num_classes=5, height=32, width=32, ngf=4, n_downsample_global=2,
                n_blocks_global=1, use_edges=True)
    args.update(kw)
    torch.manual_seed(0)
    return Pix2PixHDGenerator(**args)


def test_official_module_names_and_input_channels():
    g = build_model("pix2pixhd", dataset="tiny")
    names = set(dict(g.named_parameters()))
    # pad, conv, norm, relu + 2 x (conv, norm, relu): the first block is model.10, as official
    assert "model.1.weight" in names and "model.10.conv_block.1.weight" in names
    assert g.model[1].in_channels == 5 + 1  # classes + instance edge, no features
    loc = build_model("pix2pixhd_local", dataset="tiny")
    lnames = set(dict(loc.named_parameters()))
    assert {"model1_1.1.weight", "model1_2.0.conv_block.1.weight"} <= lnames
    assert not isinstance(loc.model[-1], torch.nn.Tanh)  # global head dropped
    assert loc.model[1].out_channels == 2 * loc.model1_1[1].out_channels  # ngf * 2**n


def test_cityscapes_uses_the_official_35_label_channels():
    g = build_model("pix2pixhd", dataset="cityscapes", ngf=1, n_blocks_global=0)
    assert g.num_classes == 34 and g.label_nc == 35 and g.model[1].in_channels == 36
    labels = torch.zeros(1, 256, 512, dtype=torch.long)
    cond = g.condition(labels, torch.ones(1, 1, 256, 512))
    assert cond.shape[1] == 36 and cond[:, 34].abs().sum() == 0 and cond[:, 35].min() == 1
    coco = build_model("pix2pixhd", dataset="coco_stuff", ngf=1, n_blocks_global=0)
    assert coco.label_nc == 183  # 182 classes + dontcare (last), then the edge channel
    lab = torch.full((1, 256, 256), 255)
    assert coco.condition(lab, torch.zeros(1, 1, 256, 256))[:, 182].min() == 1
    with pytest.raises(ValueError, match="label_nc"):
        _small(label_nc=3)


def test_two_local_enhancers_and_resolution_check():
    g = _small(n_local_enhancers=2, n_blocks_local=1).eval()
    labels, edges, noise = g.example_inputs(batch_size=2)
    assert noise is None
    with torch.no_grad():
        out = g(labels, edges)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    assert hasattr(g, "model2_2") and not hasattr(g.model1_2, "tanh")
    with pytest.raises(ValueError, match="multiples"):
        _small(height=36, n_local_enhancers=1)


def test_noise_is_rejected_and_edges_required():
    g = _small()
    labels, edges, _ = g.example_inputs()
    with pytest.raises(ValueError, match="no noise"):
        g(labels, edges, torch.zeros(1, 4))
    with pytest.raises(ValueError, match="edges"):
        g(labels)


def test_feature_input_changes_style_and_exports(tmp_path):
    from sisgen.export import export_onnx

    g = _small(feat_num=3, n_downsample_global=1, n_blocks_global=0)  # small graph to export
    assert g.input_names[-1] == "features" and g.model[1].in_channels == 5 + 1 + 3
    labels, edges, noise, feats = g.example_inputs(batch_size=2)
    assert feats.shape == (2, 3, 32, 32) and noise is None
    g.eval()
    with torch.no_grad():
        a = g(labels, edges, None, feats)
        b = g(labels, edges, features=-feats)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="features"):
        g(labels, edges)
    g.save(tmp_path / "m")
    back = load_model(tmp_path / "m")
    assert back.input_names == g.input_names
    with torch.no_grad():
        assert torch.equal(back(labels, edges, None, feats), a)
    _, parity = export_onnx(g, tmp_path / "g.onnx")
    assert parity.max_abs <= 1e-4


def test_instance_average_matches_a_loop_and_passes_gradients():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 6, 6, requires_grad=True)
    regions = torch.randint(0, 3, (2, 6, 6)) * 1000  # arbitrary id values
    out = instance_average(x, regions)
    for b in range(2):
        for r in regions[b].unique():
            m = regions[b] == r
            expect = x[b][:, m].mean(1)
            assert torch.allclose(out[b][:, m], expect[:, None].expand(-1, int(m.sum())))
    out.sum().backward()
    assert torch.allclose(x.grad, torch.ones_like(x))  # means redistribute the gradient


def test_object_ids_separate_instances_and_class_regions():
    labels = torch.tensor([[[1, 1, 3, 3]]])
    inst = torch.tensor([[[0, 0, 7, 8]]])
    ids = object_ids(labels, inst)
    assert ids.unique().numel() == 3 and ((ids >> 32) == labels).all()
    assert object_ids(labels).unique().numel() == 2


def test_encoder_features_are_constant_per_object():
    torch.manual_seed(0)
    enc = Pix2PixHDEncoder(feat_num=3, nef=4, n_downsampling=2)
    img = torch.rand(1, 3, 16, 16) * 2 - 1
    labels = torch.zeros(1, 16, 16, dtype=torch.long)
    labels[:, 8:] = 3
    inst = torch.zeros_like(labels)
    inst[:, 8:, :8], inst[:, 8:, 8:] = 3001, 3002
    f = enc(img, object_ids(labels, inst))
    assert f.shape == (1, 3, 16, 16)
    assert f[0, :, 8:, :8].flatten(1).std(1).max() < 1e-6
    assert not torch.allclose(f[0, :, 8, 0], f[0, :, 8, 15])
    bank = encode_features(enc, img, labels, inst)
    assert sorted(bank) == [0, 3] and bank[3].shape == (2, 4) and bank[0].shape == (1, 4)
    # area column: pixels / (H*W // 32) = 64 / 8 and 128 / 8
    assert np.allclose(sorted(bank[3][:, -1]), [8, 8]) and np.isclose(bank[0][0, -1], 16)
    assert merge_features(bank, bank)[3].shape == (4, 4)


def test_kmeans_recovers_separated_clusters():
    rng = np.random.default_rng(0)
    true = np.array([[0.0, 0.0], [5.0, 5.0], [-5.0, 5.0]])
    x = np.concatenate([c + 0.1 * rng.standard_normal((30, 2)) for c in true])
    centres = kmeans(x, 3, seed=1)
    assert np.abs(np.sort(centres, 0) - np.sort(true, 0)).max() < 0.1
    with pytest.raises(ValueError):
        kmeans(x, 0)


def test_cluster_features_filters_small_objects_and_caps_k():
    bank = {1: np.array([[0.1, 0.2, 0.3, 2.0], [0.5, 0.5, 0.5, 0.4]]),  # second too small
            2: np.array([[0.0, 0.0, 0.0, 0.1]]),  # no object big enough
            4: np.random.default_rng(0).random((40, 4)) + 1}
    c = cluster_features(bank, n_clusters=10)
    assert sorted(c) == [1, 4] and c[1].shape == (1, 3) and c[4].shape == (10, 3)
    assert np.allclose(c[1][0], [0.1, 0.2, 0.3])


def test_sample_feature_map_is_per_object_and_seeded():
    centres = {3: np.array([[1.0, 1.0], [-1.0, -1.0], [0.5, -0.5]]), 0: np.array([[0.2, 0.3]])}
    labels = torch.zeros(1, 8, 8, dtype=torch.long)
    labels[:, 4:] = 3
    inst = torch.zeros_like(labels)
    for k in range(4):  # four cars side by side
        inst[:, 4:, 2 * k:2 * k + 2] = 3000 + k
    labels[:, 0, 0] = 2  # a class without centres -> zeros
    f = sample_feature_map(centres, labels, inst, generator=0)
    assert f.shape == (1, 2, 8, 8) and f[0, :, 0, 0].abs().sum() == 0
    assert torch.allclose(f[0, :, 0, 1], torch.tensor([0.2, 0.3]))
    cars = [f[0, :, 4, 2 * k] for k in range(4)]
    for k in range(4):  # constant inside each object, one of its class's centres
        assert (f[0, :, 4:, 2 * k:2 * k + 2] == cars[k][:, None, None]).all()
        assert any(torch.allclose(cars[k], torch.tensor(c, dtype=torch.float32))
                   for c in centres[3])
    assert torch.equal(f, sample_feature_map(centres, labels, inst, generator=0))
    draws = {tuple(sample_feature_map(centres, labels, inst, generator=s)[0, :, 4, 0].tolist())
             for s in range(20)}
    assert len(draws) > 1
