"""Behaviour of the SPADE / CLADE generators, the registry, save/load and the export form."""

from __future__ import annotations

import json

import pytest
import torch
from torch.nn.utils import parametrize

import sisgen
from sisgen.errors import SisgenInputError
from sisgen.models import SPADEGenerator, available_models, build_model, load_model
from sisgen.models.layers import CLADE, SPADE, labels_to_onehot

TINY = dict(dataset="toycity", ngf=4, spade_hidden=8, height=32, width=64)


def tiny(name: str = "spade", **kw) -> SPADEGenerator:
    args = dict(TINY, z_dim=8)
    args.update(kw)
    torch.manual_seed(0)
    return build_model(name, **args)


def blocky_labels(batch: int, h: int, w: int, num_classes: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, num_classes, (batch, h // 8, w // 8), generator=g)
    return lab.repeat_interleave(8, 1).repeat_interleave(8, 2)


def run_eval(model, labels, edges, noise) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(labels, edges, noise)


# ----------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("name", ["spade", "clade"])
@pytest.mark.parametrize("z_dim", [0, 8])
@pytest.mark.parametrize("use_edges", [False, True])
def test_output_shape_and_range(name, z_dim, use_edges):
    m = tiny(name, z_dim=z_dim, use_edges=use_edges)
    labels, edges, noise = m.example_inputs(batch_size=2)
    assert labels.shape == (2, 32, 64)
    assert edges.shape == (2, 1, 32, 64) if use_edges else edges is None
    if z_dim:
        assert noise.shape == (2, z_dim)
        assert m.noise_spec() == {"shape": [z_dim], "distribution": "normal"}
    else:
        assert noise is None and m.noise_spec() == {}
    out = run_eval(m, labels, edges if use_edges else None, noise)
    assert out.shape == (2, 3, 32, 64)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert out.min() >= -1 and out.max() <= 1
    assert out.std() > 0  # not a constant image


def test_missing_inputs_raise():
    m = tiny("spade", z_dim=8, use_edges=True).eval()
    labels, edges, noise = m.example_inputs(1)
    with pytest.raises(ValueError, match="edges"):
        m(labels, None, noise)
    with pytest.raises(ValueError, match="noise"):
        m(labels, edges, None)
    with pytest.raises(ValueError, match="noise"):
        m(labels, edges, torch.zeros(1, 5))
    with pytest.raises(ValueError, match=r"\[B,H,W\]"):
        m(labels[0], edges, noise)


@pytest.mark.parametrize("name,z_dim", [("spade", 8), ("clade", 0)])
def test_every_parameter_is_connected(name, z_dim, unconnected):
    m = tiny(name, z_dim=z_dim, use_edges=True).train()
    labels, edges, noise = m.example_inputs(batch_size=2)
    out = m(labels, edges, noise)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    assert not unconnected(m, (out * w).sum())


# -------------------------------------------------------------------------- ignore id
def test_onehot_dontcare_channel():
    labels = torch.tensor([[[0, 2, 255]]])
    oh = labels_to_onehot(labels, 3, dontcare=True)
    assert oh.shape == (1, 4, 1, 3)
    assert oh[0, :, 0, :].T.tolist() == [[1, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
    oh = labels_to_onehot(labels, 3, dontcare=False)
    assert oh.shape == (1, 3, 1, 3)
    assert oh[0, :, 0, 2].tolist() == [0, 0, 0]


@pytest.mark.parametrize("name", ["spade", "clade"])
def test_ignore_labels_on_coco_stuff_with_dontcare(name):
    m = build_model(name, dataset="coco_stuff", ngf=4, spade_hidden=8, z_dim=0,
                    height=32, width=32)
    assert m.config["dontcare"] is True and m.num_classes == 182
    seg_nc = 182 + 1 + 1  # classes + dontcare + edges
    if name == "spade":
        assert m.head_0.norm_0.mlp_shared[0].in_channels == seg_nc
    else:
        assert m.head_0.norm_0.weight.shape[0] == 183  # a table row for dontcare
    labels = blocky_labels(2, 32, 32, 182)
    labels[:, :16] = 255
    edges = torch.from_numpy(sisgen.instance_edges(labels.numpy()))[:, None]
    seg, idx = m.condition(labels, edges), m.table_index(labels)
    assert seg.shape == (2, seg_nc, 32, 32)
    assert (seg[:, 182, :16] == 1).all() and (seg[:, 182, 16:] == 0).all()
    assert (idx[:, 0, :16] == 182).all()
    out = run_eval(m, labels, edges, None)
    assert out.shape == (2, 3, 32, 32) and torch.isfinite(out).all()
    # the ignore region is not treated like class 0
    as_zero = labels.clone()
    as_zero[:, :16] = 0
    out0 = run_eval(m, as_zero, edges, None)
    assert not torch.allclose(out, out0)


@pytest.mark.parametrize("name", ["spade", "clade"])
def test_ignore_labels_without_dontcare(name):
    m = tiny(name, z_dim=8)
    labels, edges, noise = m.example_inputs(2)
    labels[:, 10:20, 5:30] = 255
    m.train()
    out = m(labels, edges, noise)
    out.sum().backward()
    assert torch.isfinite(out).all()
    idx = m.table_index(labels)
    assert idx.max() < m.num_classes and idx.min() >= 0


# ------------------------------------------------------------------------- conditioning
@pytest.mark.parametrize("name", available_models())
@pytest.mark.parametrize("dontcare", [False, True])
def test_condition_is_onehot_then_edges(name, dontcare):
    torch.manual_seed(0)
    m = build_model(name, dataset="tiny")
    if dontcare:
        if "dontcare" not in m.config:
            pytest.skip("no dontcare argument (OASIS has a dontcare channel of its own)")
        m = build_model(name, dataset="tiny", dontcare=True)
    labels, edges, *_ = m.example_inputs(2)
    labels[:, :4, :4] = 255
    seg = m.condition(labels, edges)
    n = m.label_channels + int(m.dontcare)
    hole = int(name == "sesame")  # SESAME appends its hole channel
    assert seg.dtype == torch.float32
    assert seg.shape == (2, n + int(m.uses_edges) + hole, *labels.shape[-2:])
    assert torch.equal(seg[:, :n], m.onehot(labels))
    if m.dontcare:
        assert (seg[:, n - 1, :4, :4] == 1).all()  # ignore -> the dontcare channel, last
    if m.uses_edges:
        assert torch.equal(seg[:, n], edges[:, 0])
        with pytest.raises(ValueError, match="use_edges=True: pass edges"):
            m.condition(labels, None)
    with pytest.raises(ValueError, match=r"\[B,H,W\]"):
        m.condition(labels[0], edges)


# ----------------------------------------------------------------------------- registry
def test_build_model_unknown_name_lists_names():
    with pytest.raises(SisgenInputError) as ei:
        build_model("no_such_model", dataset="toycity")
    msg = str(ei.value)
    assert msg.startswith("unknown model 'no_such_model'; known: ")
    for name in available_models():
        assert name in msg
    assert {"spade", "clade"} <= set(available_models())


def test_build_model_unknown_dataset():
    with pytest.raises(SisgenInputError, match="nowhere"):
        build_model("spade", dataset="nowhere")


@pytest.mark.parametrize("h,w", [(32, 48), (40, 64), (100, 100)])
def test_bad_resolution(h, w):
    with pytest.raises(ValueError, match="multiple"):
        tiny("spade", height=h, width=w)


def test_bad_resolution_more_upsampling():
    with pytest.raises(ValueError, match="64"):
        tiny("spade", height=32, width=64, num_upsampling_layers="more")
    m = tiny("spade", height=64, width=64, num_upsampling_layers="more")
    assert run_eval(m, *m.example_inputs(1)).shape == (1, 3, 64, 64)


def test_build_model_sets_vocabulary_and_overrides():
    m = tiny("clade", z_dim=0, use_edges=False)
    assert m.model_name == "clade"
    assert m.vocabulary.name == "toycity"
    assert m.num_classes == m.vocabulary.num_classes
    assert m.config["cond"] == "clade" and m.config["ngf"] == 4
    assert m.resolution == (32, 64) and not m.uses_edges
    assert isinstance(m.head_0.norm_0, CLADE)


# ---------------------------------------------------------------------------- save/load
@pytest.mark.parametrize("name,kw", [("spade", dict(z_dim=8)),
                                     ("clade", dict(z_dim=0, use_edges=False))])
def test_save_load_roundtrip(tmp_path, name, kw):
    m = tiny(name, **kw)
    # move BN running stats and spectral-norm vectors away from their initial values
    m.train()
    m(*m.example_inputs(2, seed=1))
    m.eval()
    inputs = m.example_inputs(3, seed=7)
    ref = run_eval(m, *inputs)
    folder = m.save(tmp_path / "model")
    assert (folder / "config.json").is_file() and (folder / "model.safetensors").is_file()

    loaded = load_model(folder)
    assert type(loaded) is SPADEGenerator
    assert not loaded.training
    assert loaded.model_name == name
    assert loaded.vocabulary.name == "toycity"
    assert loaded.vocabulary.ids == m.vocabulary.ids
    assert loaded.vocabulary.names == m.vocabulary.names
    assert loaded.config == m.config
    assert loaded.weights_hash() == m.weights_hash()
    assert torch.equal(run_eval(loaded, *inputs), ref)
    # also through the weights file and through sisgen.load
    assert torch.equal(run_eval(load_model(folder / "model.safetensors"), *inputs), ref)
    gen = sisgen.load(folder)
    assert gen.vocabulary.ids == m.vocabulary.ids
    assert gen.model_name == name and gen.resolution == (32, 64)
    assert gen.noise_spec == m.noise_spec()
    assert gen.model_hash == m.weights_hash()
    with torch.no_grad():
        out = gen(*inputs).cpu()
    torch.testing.assert_close(out, ref)


def test_config_json_is_constructor_args(tmp_path):
    m = tiny("spade", z_dim=8, norm="instance")
    m.save(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert cfg["architecture"] == "SPADEGenerator"
    assert cfg["model_name"] == "spade"
    assert cfg["args"] == {
        "num_classes": m.vocabulary.num_classes, "height": 32, "width": 64, "ngf": 4,
        "z_dim": 8, "use_edges": True, "dontcare": False, "cond": "spade", "norm": "instance",
        "spectral": True, "num_upsampling_layers": "normal", "spade_hidden": 8,
        "spatial_noise_dim": 0, "padding_mode": "zeros", "icpe": False,
        "variation_noise": None, "position_code": None, "vasis_noise_channels": 8,
        "position_channels": "all",
    }
    assert cfg["resolution"] == [32, 64]
    assert cfg["noise"] == {"shape": [8], "distribution": "normal"}
    assert cfg["vocabulary"]["name"] == "toycity"
    # the args rebuild an identical architecture
    rebuilt = SPADEGenerator(**cfg["args"])
    assert rebuilt.state_dict().keys() == m.state_dict().keys()


def test_load_corrupt_config(tmp_path):
    m = tiny("clade", z_dim=0)
    m.save(tmp_path)
    cfg_path = tmp_path / "config.json"
    cfg_path.write_text("{not json")
    with pytest.raises(SisgenInputError, match="config.json"):
        load_model(tmp_path)
    with pytest.raises(SisgenInputError, match="config.json"):
        sisgen.load(tmp_path)
    cfg_path.write_text(json.dumps({"architecture": "Nope", "args": {}}))
    with pytest.raises(SisgenInputError, match="config.json") as ei:
        load_model(tmp_path)
    assert "unknown architecture 'Nope'; known: " in str(ei.value)
    assert "SPADEGenerator" in str(ei.value)


def test_load_config_with_bad_args(tmp_path):
    m = tiny("clade", z_dim=0)
    m.save(tmp_path)
    cfg_path = tmp_path / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["args"]["bogus"] = 1
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(SisgenInputError, match="config.json"):
        load_model(tmp_path)
    del cfg["args"]["bogus"]
    cfg["args"]["width"] = 50
    cfg_path.write_text(json.dumps(cfg))
    with pytest.raises(SisgenInputError, match="config.json"):
        load_model(tmp_path)


def test_load_corrupt_or_mismatched_weights(tmp_path):
    m = tiny("clade", z_dim=0)
    m.save(tmp_path)
    w = tmp_path / "model.safetensors"
    w.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(SisgenInputError, match="model.safetensors"):
        load_model(tmp_path)
    w.unlink()
    with pytest.raises(SisgenInputError, match="model.safetensors"):
        load_model(tmp_path)
    # weights of a different architecture
    tiny("clade", z_dim=0, ngf=8).save(tmp_path / "other")
    (tmp_path / "other" / "model.safetensors").rename(w)
    with pytest.raises(SisgenInputError, match="model.safetensors"):
        load_model(tmp_path)


def test_load_missing_folder(tmp_path):
    with pytest.raises(SisgenInputError):
        load_model(tmp_path / "absent")
    with pytest.raises(SisgenInputError, match="absent"):
        sisgen.load(tmp_path / "absent")


# ---------------------------------------------------------------------------- export form
def test_export_form_matches_and_keeps_original(tmp_path):
    m = tiny("spade", z_dim=8)
    m.train()
    m(*m.example_inputs(2))  # one power iteration: u/v differ from their init
    m.eval()
    keys = list(m.state_dict().keys())
    inputs = m.example_inputs(2, seed=3)
    ref = run_eval(m, *inputs)

    f1 = m.export_form()
    f2 = m.export_form()
    assert f1 is not m and not f1.training
    assert not any(parametrize.is_parametrized(mod) for mod in f1.modules())
    assert all(not p.requires_grad for p in f1.parameters())
    assert f1.vocabulary is m.vocabulary and f1.model_name == "spade"
    with torch.no_grad():
        torch.testing.assert_close(f1(*inputs), ref)
        torch.testing.assert_close(f2(*inputs), ref)

    # the original is untouched: still spectral-normalized, same weights, still trainable
    assert parametrize.is_parametrized(m.head_0.conv_0)
    assert list(m.state_dict().keys()) == keys
    assert torch.equal(run_eval(m, *inputs), ref)
    m.train()
    m(*inputs).sum().backward()
    assert m.head_0.conv_0.parametrizations.weight.original.grad is not None
    # after a train step (new u/v and BN stats) a new export form follows the model
    ref2 = run_eval(m, *inputs)
    assert not torch.equal(ref2, ref)
    with torch.no_grad():
        torch.testing.assert_close(m.export_form()(*inputs), ref2)
    m.save(tmp_path)
    assert torch.equal(run_eval(load_model(tmp_path), *inputs), ref2)


def test_spade_batch_norm_folds_into_the_modulation():
    torch.manual_seed(0)
    layer = SPADE(6, seg_channels=4, hidden=8, norm="batch")
    bn = layer.param_free_norm
    with torch.no_grad():
        bn.running_mean.normal_()
        bn.running_var.uniform_(0.2, 3.0)
    x, seg = torch.randn(2, 6, 8, 8), torch.rand(2, 4, 16, 16)
    assert not layer.fold_norm()  # training mode: the norm uses batch statistics
    layer.eval()
    with torch.no_grad():
        ref = layer(x, seg)
        assert layer.fold_norm()
        assert isinstance(layer.param_free_norm, torch.nn.Identity)
        torch.testing.assert_close(layer(x, seg), ref, rtol=1e-4, atol=1e-5)
    assert not layer.fold_norm()  # nothing left to fold
    inorm = SPADE(6, seg_channels=4, hidden=8, norm="instance").eval()
    assert not inorm.fold_norm()
    assert isinstance(inorm.param_free_norm, torch.nn.InstanceNorm2d)


#: Architectures whose every BatchNorm sits in a conditional norm that folds it.
FOLDS_ALL_BATCH_NORMS = {"spade", "oasis", "clade", "safm", "sesame", "lggan", "posgen"}


@pytest.mark.parametrize("name", available_models())
def test_export_form_folds_batch_norms_and_matches_eval(name):
    torch.manual_seed(0)
    m = build_model(name, dataset="tiny")
    norms = [x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    with torch.no_grad():  # running statistics far from their init, as after training
        for bn in norms:
            bn.running_mean.normal_(0.0, 0.5)
            bn.running_var.uniform_(0.3, 3.0)
    inputs = m.example_inputs(2, seed=3)
    form = m.export_form()
    with torch.no_grad():
        torch.testing.assert_close(form(*inputs), m.eval()(*inputs), rtol=1e-4, atol=1e-4)
    left = [x for x in form.modules() if isinstance(x, torch.nn.BatchNorm2d)]
    if name in FOLDS_ALL_BATCH_NORMS:
        assert norms and not left
    assert len([x for x in m.modules() if isinstance(x, torch.nn.BatchNorm2d)]) == len(norms)


# -------------------------------------------------------------------------------- noise
def test_seeds_determine_images():
    m = tiny("spade", z_dim=8).eval()
    labels, edges, _ = m.example_inputs(1)
    n1, n1b, n2 = m.sample_noise([11]), m.sample_noise([11]), m.sample_noise([12])
    assert torch.equal(n1, n1b) and not torch.equal(n1, n2)
    a, b, c = (run_eval(m, labels, edges, n) for n in (n1, n1b, n2))
    assert torch.equal(a, b)
    assert (a - c).abs().max() > 1e-3


# ------------------------------------------------------------------------------- CLADE
def test_clade_layer_is_a_per_class_lookup():
    torch.manual_seed(0)
    layer = CLADE(4, num_labels=3, norm="none")
    with torch.no_grad():
        layer.weight.copy_(torch.randn(3, 4))
        layer.bias.copy_(torch.randn(3, 4))
    x = torch.randn(1, 4, 2, 3)
    labels = torch.tensor([[[[0, 1, 2], [2, 2, 0]]]])
    out = layer(x, torch.zeros(1, 4, 2, 3), labels)
    for i in range(2):
        for j in range(3):
            k = labels[0, 0, i, j]
            expect = x[0, :, i, j] * layer.weight[k] + layer.bias[k]
            assert torch.allclose(out[0, :, i, j], expect)


def test_clade_edges_channel():
    # official CLADE: the edge map passes a 1x1 conv and is appended as one more channel
    layer = CLADE(2, num_labels=2, use_edges=True, norm="none")
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.zero_()
        layer.inst_conv.weight.fill_(5.0)
        layer.inst_conv.bias.fill_(-1.0)
    x = torch.zeros(1, 2, 1, 2)
    seg = torch.zeros(1, 3, 1, 2)
    seg[0, -1, 0, 1] = 1  # edge channel is last
    out = layer(x, seg, torch.zeros(1, 1, 1, 2, dtype=torch.long))
    assert out.shape == (1, 3, 1, 2)
    assert out[0, :, 0, 0].tolist() == [0.0, 0.0, -1.0]
    assert out[0, :, 0, 1].tolist() == [0.0, 0.0, 4.0]


def test_clade_changes_stay_local():
    m = tiny("clade", z_dim=8, use_edges=False).eval()
    labels = torch.zeros(1, 32, 64, dtype=torch.long)
    noise = m.sample_noise([0])
    changed = labels.clone()
    changed[:, 4:8, 4:8] = 3
    a = run_eval(m, labels, None, noise)
    b = run_eval(m, changed, None, noise)
    diff = (a - b).abs().amax(dim=1)[0]  # [H,W]
    assert diff[4:8, 4:8].max() > 1e-3
    # well outside the receptive field of the changed pixels nothing moves
    assert diff[:, 40:].max() == 0
    assert (diff > 1e-6).float().mean() < 0.5
