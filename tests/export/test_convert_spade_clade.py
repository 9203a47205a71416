"""SPADE / CLADE / CLADE-ICPE converters: official key layout in, identical model out.

The official-layout state dicts are written by :func:`official_layout`, a hand-written
renaming of sisgen's keys into the names the official code (NVlabs/SPADE, tzt101/CLADE)
saves -- independent of the converter's own mapping -- and one block's complete official
key list is pinned literally below.
"""

from __future__ import annotations

import pytest
import torch

from sisgen.cli import main
from sisgen.errors import SisgenInputError
from sisgen.export.convert import convert
from sisgen.export.convert.spade import convert_encoder
from sisgen.models import build_model
from sisgen.models.base import load_model
from sisgen.models.encoder import ConvEncoder

_SN = {".parametrizations.weight.original": ".weight_orig",
       ".parametrizations.weight.0._u": ".weight_u",
       ".parametrizations.weight.0._v": ".weight_v"}
_CLADE_LEAVES = ("weight", "bias", "dist_conv_w.weight", "dist_conv_w.bias",
                 "dist_conv_b.weight", "dist_conv_b.bias")


def official_layout(state: dict[str, torch.Tensor], clade: bool) -> dict[str, torch.Tensor]:
    """sisgen keys -> the official generator's keys (hook spectral norm, ClassAffine)."""
    out = {}
    for key, value in state.items():
        for ours, theirs in _SN.items():
            if key.endswith(ours):
                key = key[: -len(ours)] + theirs
        parts = key.split(".")
        if clade and len(parts) >= 3 and parts[1] in ("norm_0", "norm_1", "norm_s"):
            leaf = ".".join(parts[2:])
            if leaf in _CLADE_LEAVES:
                key = ".".join(parts[:2] + ["class_specified_affine", leaf])
        out[key] = value.clone()
    return out


#: The official names of a learned-shortcut CLADE-ICPE block with instance edges.
_UP0_CLADE_ICPE = {
    *(f"up_0.conv_{c}.{t}" for c in "01" for t in ("bias", "weight_orig", "weight_u",
                                                    "weight_v")),
    "up_0.conv_s.weight_orig", "up_0.conv_s.weight_u", "up_0.conv_s.weight_v",
    *(f"up_0.norm_{n}.{leaf}" for n in "01s" for leaf in (
        "param_free_norm.running_mean", "param_free_norm.running_var",
        "param_free_norm.num_batches_tracked",
        "class_specified_affine.weight", "class_specified_affine.bias",
        "class_specified_affine.dist_conv_w.weight", "class_specified_affine.dist_conv_w.bias",
        "class_specified_affine.dist_conv_b.weight", "class_specified_affine.dist_conv_b.bias",
        "inst_conv.weight", "inst_conv.bias")),
}


def _randomize(model: torch.nn.Module, labels, edges, noise=None) -> None:
    """Train-mode forwards (power iterations, BN statistics), random CLADE tables."""
    torch.manual_seed(1)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(labels, edges, noise)
        for name, p in model.named_parameters():
            if name.endswith(("norm_0.bias", "norm_1.bias", "norm_s.bias")) or "dist_conv" in name:
                p.copy_(torch.randn_like(p) * 0.3)
    model.eval()


def _inputs(num_classes: int, h: int = 64, w: int = 64, ignore: bool = False):
    g = torch.Generator().manual_seed(0)
    coarse = torch.randint(0, num_classes, (2, 1, h // 8, w // 8), generator=g).float()
    labels = torch.nn.functional.interpolate(coarse, size=(h, w)).long()[:, 0]
    if ignore:
        labels[:, :8, :8] = 255
    edges = (torch.rand(2, 1, h, w, generator=g) < 0.1).float()
    return labels, edges


def _source(name: str, dataset: str = "tiny", **overrides):
    model = build_model(name, dataset=dataset, **overrides)
    labels, edges = _inputs(model.num_classes, *model.resolution,
                            ignore=bool(getattr(model, "dontcare", False)))
    noise = torch.randn(2, model.z_dim) if model.z_dim else None
    edges = edges if model.use_edges else None
    _randomize(model, labels, edges, noise)
    return model, (labels, edges, noise)


def _same(a: torch.nn.Module, b: torch.nn.Module, inputs) -> None:
    with torch.no_grad():
        ya, yb = a(*inputs), b(*inputs)
    assert ya.std() > 1e-3
    torch.testing.assert_close(yb, ya, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["spade", "clade", "clade_icpe"])
def test_tiny_roundtrip(name):
    src, inputs = _source(name)
    state = official_layout(src.state_dict(), clade=name != "spade")
    model = convert("clade" if name.startswith("clade") else "spade", state, "tiny")
    assert model.model_name == name and not model.training
    _same(src, model, inputs)


def test_official_key_names_of_a_block():
    src = build_model("clade_icpe", dataset="tiny")
    state = official_layout(src.state_dict(), clade=True)
    assert {k for k in state if k.startswith("up_0.")} == _UP0_CLADE_ICPE


def test_coco_stuff_dontcare_and_vae():
    """184 label channels (182 + dontcare + edge), ignore pixels, a VAE fc."""
    src, inputs = _source("clade", "coco_stuff", ngf=2, height=64, width=64, z_dim=8)
    model = convert("clade", official_layout(src.state_dict(), True), "coco_stuff",
                    height=64, width=64)
    assert model.z_dim == 8 and model.dontcare
    _same(src, model, inputs)


def test_cityscapes_more_upsampling_spade():
    src, inputs = _source("spade", "cityscapes", ngf=2, spade_hidden=8, height=64, width=128)
    assert src.num_upsampling_layers == "more"
    model = convert("spade", official_layout(src.state_dict(), False), "cityscapes",
                    height=64, width=128)
    assert model.num_upsampling_layers == "more" and model.num_classes == 35
    _same(src, model, inputs)


def test_torch10_spectral_norm_without_v():
    """torch 1.0 files store the folded weight instead of weight_v."""
    src, inputs = _source("spade")
    state = official_layout(src.state_dict(), clade=False)
    for name, module in src.named_modules():
        if hasattr(module, "parametrizations"):
            state[f"{name}.weight"] = module.weight.detach().clone()  # W / sigma (eval)
            del state[f"{name}.weight_v"]
    model = convert("spade", state, "tiny")
    with torch.no_grad():
        torch.testing.assert_close(model(*inputs), src(*inputs), rtol=0, atol=1e-5)


def test_encoder():
    enc = ConvEncoder(ngf=2, z_dim=8)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    enc.train()
    with torch.no_grad():
        enc(x)
    enc.eval()
    out = convert_encoder(official_layout(enc.state_dict(), clade=False))
    with torch.no_grad():
        for a, b in zip(enc(x), out(x), strict=True):
            torch.testing.assert_close(b, a, rtol=0, atol=1e-6)
    five = official_layout(ConvEncoder(ngf=2, z_dim=8, input_size=128).state_dict(), False)
    with pytest.raises(SisgenInputError, match="layer6"):
        convert_encoder(five)


class _NotATensor:
    pass


def test_pickle_code_is_refused(tmp_path):
    path = tmp_path / "latest_net_G.pth"
    torch.save({"fc.weight": torch.zeros(1), "opt": _NotATensor()}, path)
    with pytest.raises(SisgenInputError, match="pickle") as e:
        convert("spade", path, "tiny")
    assert e.value.path == str(path)


def test_shape_mismatch_names_the_key(tmp_path):
    src, _ = _source("clade")
    state = official_layout(src.state_dict(), clade=True)
    key = "up_1.norm_1.class_specified_affine.bias"
    state[key] = torch.zeros(5, 3)
    path = tmp_path / "best_net_G.pth"
    torch.save(state, path)
    with pytest.raises(SisgenInputError) as e:
        convert("clade", path, "tiny")
    msg = str(e.value)
    assert key in msg and "(5, 3)" in msg and str(tuple(src.up_1.norm_1.bias.shape)) in msg
    assert e.value.path == str(path)


def test_wrong_dataset_and_wrong_architecture():
    spade_state = official_layout(_source("spade")[0].state_dict(), clade=False)
    with pytest.raises(SisgenInputError, match="mlp_shared.0.weight.*label channels"):
        convert("spade", spade_state, "ade20k")
    with pytest.raises(SisgenInputError, match="not a CLADE generator"):
        convert("clade", spade_state, "tiny")
    clade_state = official_layout(_source("clade_icpe")[0].state_dict(), clade=True)
    with pytest.raises(SisgenInputError, match="unexpected key.*dist_conv_w"):
        convert("clade", clade_state, "tiny", icpe=False)
    missing = {k: v for k, v in clade_state.items() if "G_middle_1.conv_1.weight_u" not in k}
    with pytest.raises(SisgenInputError, match="G_middle_1.conv_1.weight_u"):
        convert("clade", missing, "tiny")


def test_cli_writes_a_loadable_folder(tmp_path, capsys):
    src, inputs = _source("clade_icpe")
    ckpt = tmp_path / "best_net_G.pth"
    # files from torch < 1.6 (the 2019 SPADE release) use the legacy, non-zip format
    torch.save(official_layout(src.state_dict(), clade=True), ckpt,
               _use_new_zipfile_serialization=False)
    out = tmp_path / "converted"
    assert main(["convert", "clade", "--ckpt", str(ckpt), "--dataset", "tiny",
                 "--out", str(out), "--option", "icpe=true"]) == 0
    assert "converted" in capsys.readouterr().out
    loaded = load_model(out)
    assert loaded.model_name == "clade_icpe"
    _same(src, loaded.eval(), inputs)
    assert main(["convert", "spade", "--ckpt", str(ckpt), "--dataset", "tiny",
                 "--out", str(tmp_path / "x")]) == 2
