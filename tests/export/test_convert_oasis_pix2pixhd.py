"""OASIS and pix2pixHD checkpoint converters.

The official state dicts here are built from the official module structure written out as
names and shapes (not from the converters' mapping), and their outputs are computed by a
functional re-statement of the official forward passes over those tensors: the
converted sisgen model must reproduce them.
"""

from __future__ import annotations

import argparse

import pytest
import torch
import torch.nn.functional as F

from sisgen.cli import main as cli_main
from sisgen.errors import SisgenInputError
from sisgen.export.convert import convert, load_official_state_dict
from sisgen.export.convert.oasis import official_noise
from sisgen.export.convert.pix2pixhd import convert_feature_encoder
from sisgen.models import load_model

TOL = 1e-5
SEMANTIC_NC = {"cityscapes": 35, "ade20k": 151, "coco_stuff": 183}


class _Tensors:
    """Seeded random tensors, added to an ordered official-layout state dict."""

    def __init__(self, seed: int):
        self.g = torch.Generator().manual_seed(seed)
        self.state: dict[str, torch.Tensor] = {}

    def randn(self, *shape: int, scale: float = 1.0) -> torch.Tensor:
        return torch.randn(*shape, generator=self.g) * scale

    def conv(self, name: str, cin: int, cout: int, k: int, bias: bool = True,
             spectral: bool = False, transposed: bool = False) -> None:
        shape = (cin, cout, k, k) if transposed else (cout, cin, k, k)
        w = self.randn(*shape, scale=(cin * k * k) ** -0.5)
        if bias:
            self.state[f"{name}.bias"] = self.randn(cout, scale=0.1)
        if spectral:  # hook spectral norm: weight_orig + power-iteration vectors
            mat, u = w.flatten(1), F.normalize(self.randn(cout), dim=0)
            for _ in range(3):
                v = F.normalize(mat.t() @ u, dim=0)
                u = F.normalize(mat @ v, dim=0)
            self.state[f"{name}.weight_orig"] = w * 3.0  # sigma ~ 3x the plain weight's
            self.state[f"{name}.weight_u"] = u
            self.state[f"{name}.weight_v"] = v
        else:
            self.state[f"{name}.weight"] = w

    def batch_norm(self, name: str, c: int, affine: bool) -> None:
        if affine:
            self.state[f"{name}.weight"] = 1 + self.randn(c, scale=0.1)
            self.state[f"{name}.bias"] = self.randn(c, scale=0.1)
        self.state[f"{name}.running_mean"] = self.randn(c, scale=0.1)
        self.state[f"{name}.running_var"] = 0.5 + torch.rand(c, generator=self.g)
        self.state[f"{name}.num_batches_tracked"] = torch.tensor(17)


# ------------------------------------------------------------------------------- OASIS
def oasis_official_state(semantic_nc: int, ch: int = 1, z_dim: int = 64, hidden: int = 8,
                         spectral: bool = True, batch: bool = True, seed: int = 0
                         ) -> dict[str, torch.Tensor]:
    """``OASIS_Generator`` tensors in its registration order (conv_img, body, fc)."""
    t = _Tensors(seed)
    widths = [16 * ch, 16 * ch, 16 * ch, 8 * ch, 4 * ch, 2 * ch, ch]
    cond = semantic_nc + z_dim
    t.conv("conv_img", ch, 3, 3)
    for i in range(6):
        fin, fout = widths[i], widths[i + 1]
        p = f"body.{i}"
        t.conv(f"{p}.conv_0", fin, min(fin, fout), 3, spectral=spectral)
        t.conv(f"{p}.conv_1", min(fin, fout), fout, 3, spectral=spectral)
        if fin != fout:
            t.conv(f"{p}.conv_s", fin, fout, 1, bias=False, spectral=spectral)
        for norm, c in (("norm_0", fin), ("norm_1", min(fin, fout))) + (
                (("norm_s", fin),) if fin != fout else ()):
            if batch:
                t.batch_norm(f"{p}.{norm}.first_norm", c, affine=False)
            t.conv(f"{p}.{norm}.mlp_shared.0", cond, hidden, 3)
            t.conv(f"{p}.{norm}.mlp_gamma", hidden, c, 3)
            t.conv(f"{p}.{norm}.mlp_beta", hidden, c, 3)
    t.conv("fc", cond, 16 * ch, 3)
    return t.state


def _weight(state: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    """A conv weight as the official module uses it in eval mode (hook spectral norm)."""
    if f"{name}.weight_orig" in state:
        w, u, v = (state[f"{name}.weight_{s}"] for s in ("orig", "u", "v"))
        return w / torch.dot(u, w.flatten(1) @ v)
    return state[f"{name}.weight"]


def _conv(state, name, x, padding=0, stride=1):
    return F.conv2d(x, _weight(state, name), state.get(f"{name}.bias"), stride, padding)


def _spade(state, p, x, seg):
    if f"{p}.first_norm.running_mean" in state:
        normalized = F.batch_norm(x, state[f"{p}.first_norm.running_mean"],
                                  state[f"{p}.first_norm.running_var"], training=False)
    else:
        normalized = F.instance_norm(x)
    seg = F.interpolate(seg, size=x.shape[2:], mode="nearest")
    actv = F.relu(_conv(state, f"{p}.mlp_shared.0", seg, 1))
    return normalized * (1 + _conv(state, f"{p}.mlp_gamma", actv, 1)) + _conv(
        state, f"{p}.mlp_beta", actv, 1)


def oasis_official_forward(state, onehot, z):
    """The official generator's eval forward, with its ``torch.randn`` draw given as ``z``."""
    seg = onehot
    if z is not None:
        seg = torch.cat([z[:, :, None, None].expand(-1, -1, *onehot.shape[2:]), onehot], 1)
    h, w = onehot.shape[2] // 32, onehot.shape[3] // 32
    x = _conv(state, "fc", F.interpolate(seg, size=(h, w)), 1)
    for i in range(6):
        p = f"body.{i}"
        x_s = x
        if any(k.startswith(f"{p}.conv_s.") for k in state):
            x_s = _conv(state, f"{p}.conv_s", _spade(state, f"{p}.norm_s", x, seg))
        dx = _conv(state, f"{p}.conv_0", F.leaky_relu(_spade(state, f"{p}.norm_0", x, seg), 0.2),
                   1)
        dx = _conv(state, f"{p}.conv_1",
                   F.leaky_relu(_spade(state, f"{p}.norm_1", dx, seg), 0.2), 1)
        x = x_s + dx
        if i < 5:
            x = F.interpolate(x, scale_factor=2)
    return torch.tanh(_conv(state, "conv_img", F.leaky_relu(x, 0.2), 1))


def _labels(num_classes: int, h: int, w: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    lab = torch.randint(0, num_classes, (2, h // 4, w // 4), generator=g)
    lab = lab.repeat_interleave(4, 1).repeat_interleave(4, 2)
    lab[:, :3, :5] = 255  # some ignore pixels
    return lab


def oasis_official_onehot(labels: torch.Tensor, dataset: str) -> torch.Tensor:
    """The official loaders' label channels (COCO-Stuff: id + 1, unlabeled -> 0)."""
    lab = labels.clone()
    if dataset == "coco_stuff":
        lab = (lab + 1) % 256
    lab[lab == 255] = 0
    out = torch.zeros(lab.shape[0], SEMANTIC_NC[dataset], *lab.shape[1:])
    return out.scatter_(1, lab.unsqueeze(1), 1.0)


@pytest.mark.parametrize("dataset", ["cityscapes", "coco_stuff"])
def test_oasis_matches_official_forward(dataset):
    state = oasis_official_state(SEMANTIC_NC[dataset])
    model = convert("oasis", state, dataset, height=64, width=64)
    assert model.model_name == "oasis" and not model.training
    assert model.config["z_dim"] == 64 and model.config["spectral"]
    lab = _labels(model.num_classes, 64, 64)
    z = torch.randn(2, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = oasis_official_forward(state, oasis_official_onehot(lab, dataset), z)
        out = model(lab, None, official_noise(z, 64, 64))
        wrong = model(lab, None, official_noise(z.flip(1), 64, 64))
    assert ref.std() > 0.05  # not a saturated or constant reference
    assert (out - ref).abs().max() <= TOL
    assert (wrong - ref).abs().max() > 1e-2  # the noise channel order matters


def test_oasis_torch10_spectral_norm_file():
    """torch 1.0 saved the folded ``weight`` (used as is in eval mode) and no ``weight_v``."""
    state = oasis_official_state(35, seed=6)
    legacy = {}
    for key, value in state.items():
        if key.endswith(".weight_v"):
            name = key[: -len(".weight_v")]
            legacy[f"{name}.weight"] = _weight(state, name)
        else:
            legacy[key] = value
    model = convert("oasis", legacy, "cityscapes", height=32, width=64)
    lab = _labels(34, 32, 64)
    z = torch.randn(2, 64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = oasis_official_forward(state, oasis_official_onehot(lab, "cityscapes"), z)
        assert (model(lab, None, official_noise(z, 32, 64)) - ref).abs().max() <= 1e-4


def test_oasis_instance_norm_no_spectral_no_noise():
    state = oasis_official_state(151, z_dim=0, spectral=False, batch=False, seed=4)
    model = convert("oasis", state, "ade20k", height=64, width=64)
    assert model.config["norm"] == "instance" and model.config["z_dim"] == 0
    assert model.noise_shape() == ()
    lab = _labels(151, 64, 64)
    with torch.no_grad():
        ref = oasis_official_forward(state, oasis_official_onehot(lab, "ade20k"), None)
        assert (model(lab, None, None) - ref).abs().max() <= TOL


def test_oasis_errors_name_the_key_and_shapes():
    state = oasis_official_state(35)
    bad = dict(state)
    bad["body.2.norm_1.mlp_gamma.weight"] = torch.zeros(5, 8, 3, 3)
    with pytest.raises(SisgenInputError, match=r"body\.2\.norm_1\.mlp_gamma\.weight.*"
                                               r"\(5, 8, 3, 3\).*\(8, 8, 3, 3\)"):
        convert("oasis", bad, "cityscapes", height=32, width=64)
    missing = {k: v for k, v in state.items() if k != "body.3.conv_1.weight_u"}
    with pytest.raises(SisgenInputError, match=r"body\.3\.conv_1\.weight_u.*missing"):
        convert("oasis", missing, "cityscapes", height=32, width=64)
    extra = {**state, "body.0.extra.weight": torch.zeros(2)}
    with pytest.raises(SisgenInputError, match=r"unexpected key 'body\.0\.extra\.weight'"):
        convert("oasis", extra, "cityscapes", height=32, width=64)
    with pytest.raises(SisgenInputError, match="'fc.weight' reads 99 channels.*ade20k"):
        convert("oasis", state, "ade20k")  # a Cityscapes checkpoint read as ADE20K
    with pytest.raises(SisgenInputError, match="'conv_img.weight'.*missing"):
        convert("oasis", {"fc.weight": torch.zeros(1)}, "cityscapes")


# ---------------------------------------------------------------------------- pix2pixHD
def _p2p_sequence(input_nc, ngf, n_down, n_blocks, head=True, output_nc=3):
    """The official ``GlobalGenerator.model`` (and ``Encoder.model``) as (kind, args)."""
    seq = [("pad", 3), ("conv", input_nc, ngf, 7, 1), ("norm", ngf), ("relu",)]
    for i in range(n_down):
        c = ngf * 2**i
        seq += [("conv", c, 2 * c, 3, 2), ("norm", 2 * c), ("relu",)]
    seq += [("res", ngf * 2**n_down)] * n_blocks
    for i in range(n_down):
        c = ngf * 2 ** (n_down - i)
        seq += [("convT", c, c // 2), ("norm", c // 2), ("relu",)]
    return seq + ([("pad", 3), ("conv", ngf, output_nc, 7, 1), ("tanh",)] if head else [])


def _p2p_local_sequences(input_nc, ngf, n_local, n_blocks_local):
    """``model<n>_1`` / ``model<n>_2`` of the official ``LocalEnhancer``."""
    out = {}
    for n in range(1, n_local + 1):
        c = ngf * 2 ** (n_local - n)
        out[f"model{n}_1"] = [("pad", 3), ("conv", input_nc, c, 7, 1), ("norm", c), ("relu",),
                              ("conv", c, 2 * c, 3, 2), ("norm", 2 * c), ("relu",)]
        up = [("res", 2 * c)] * n_blocks_local + [("convT", 2 * c, c), ("norm", c), ("relu",)]
        if n == n_local:
            up += [("pad", 3), ("conv", ngf, 3, 7, 1), ("tanh",)]
        out[f"model{n}_2"] = up
    return out


def _p2p_tensors(t: _Tensors, prefix: str, seq, batch: bool) -> None:
    for i, (kind, *a) in enumerate(seq):
        name = f"{prefix}.{i}"
        if kind == "conv":
            t.conv(name, a[0], a[1], a[2])
        elif kind == "convT":
            t.conv(name, a[0], a[1], 3, transposed=True)
        elif kind == "norm" and batch:
            t.batch_norm(name, a[0], affine=True)
        elif kind == "res":  # pad, conv, norm, relu, pad, conv, norm
            for j in (1, 5):
                t.conv(f"{name}.conv_block.{j}", a[0], a[0], 3)
                if batch:
                    t.batch_norm(f"{name}.conv_block.{j + 1}", a[0], affine=True)


def _p2p_norm(state, name, x):
    if f"{name}.running_mean" not in state:
        return F.instance_norm(x)
    return F.batch_norm(x, state[f"{name}.running_mean"], state[f"{name}.running_var"],
                        state[f"{name}.weight"], state[f"{name}.bias"], training=False)


def _p2p_run(state, prefix, seq, x):
    for i, (kind, *a) in enumerate(seq):
        name = f"{prefix}.{i}"
        if kind == "pad":
            x = F.pad(x, (a[0],) * 4, mode="reflect")
        elif kind == "conv":
            x = _conv(state, name, x, padding=1 if a[2] == 3 else 0, stride=a[3])
        elif kind == "convT":
            x = F.conv_transpose2d(x, state[f"{name}.weight"], state[f"{name}.bias"], 2, 1, 1)
        elif kind == "norm":
            x = _p2p_norm(state, name, x)
        elif kind == "relu":
            x = F.relu(x)
        elif kind == "tanh":
            x = torch.tanh(x)
        else:  # residual block
            b = f"{name}.conv_block"
            y = F.pad(x, (1,) * 4, mode="reflect")
            y = F.relu(_p2p_norm(state, f"{b}.2", _conv(state, f"{b}.1", y)))
            y = F.pad(y, (1,) * 4, mode="reflect")
            x = x + _p2p_norm(state, f"{b}.6", _conv(state, f"{b}.5", y))
    return x


def pix2pixhd_official(input_nc, ngf=4, n_down=2, n_blocks=2, n_local=0, n_blocks_local=1,
                       batch=False, seed=0):
    """An official-layout ``netG`` state dict and its eval forward."""
    t = _Tensors(seed)
    g_seq = _p2p_sequence(input_nc, ngf * 2**n_local, n_down, n_blocks, head=not n_local)
    _p2p_tensors(t, "model", g_seq, batch)
    local = _p2p_local_sequences(input_nc, ngf, n_local, n_blocks_local)
    for prefix, seq in local.items():
        _p2p_tensors(t, prefix, seq, batch)
    state = t.state

    def forward(x):
        pyramid = [x]
        for _ in range(n_local):
            pyramid.append(F.avg_pool2d(pyramid[-1], 3, 2, 1, count_include_pad=False))
        out = _p2p_run(state, "model", g_seq, pyramid[-1])
        for n in range(1, n_local + 1):
            down = _p2p_run(state, f"model{n}_1", local[f"model{n}_1"], pyramid[n_local - n])
            out = _p2p_run(state, f"model{n}_2", local[f"model{n}_2"], down + out)
        return out

    return state, forward


def _p2p_inputs(h, w, feat_num=0, seed=2):
    g = torch.Generator().manual_seed(seed)
    lab = _labels(34, h, w, seed)
    lab[:, :3, :5] = 0  # Cityscapes label ids have no 255
    edges = (torch.rand(2, 1, h, w, generator=g) > 0.8).float()
    feats = torch.randn(2, feat_num, h, w, generator=g) if feat_num else None
    onehot = torch.zeros(2, 35, h, w).scatter_(1, lab.unsqueeze(1), 1.0)
    x = torch.cat([onehot, edges] + ([feats] if feat_num else []), 1)
    return lab, edges, feats, x


@pytest.mark.parametrize("n_local,feat_num,batch", [(0, 0, False), (1, 0, False),
                                                    (2, 3, False), (0, 0, True)])
def test_pix2pixhd_matches_official_forward(n_local, feat_num, batch):
    state, official = pix2pixhd_official(36 + feat_num, n_local=n_local, batch=batch)
    model = convert("pix2pixhd", state, "cityscapes", height=32, width=64)
    assert model.model_name == ("pix2pixhd_local" if n_local else "pix2pixhd")
    cfg = model.config
    assert (cfg["n_local_enhancers"], cfg["feat_num"], cfg["ngf"]) == (n_local, feat_num, 4)
    assert cfg["norm"] == ("batch" if batch else "instance") and cfg["label_nc"] == 35
    lab, edges, feats, x = _p2p_inputs(32, 64, feat_num)
    extra = (feats,) if feat_num else ()
    with torch.no_grad():
        ref = official(x)
        out = model(lab, edges, None, *extra)
        no_edges = model(lab, torch.zeros_like(edges), None, *extra)
    assert ref.std() > 0.05
    assert (out - ref).abs().max() <= TOL
    assert (no_edges - ref).abs().max() > 1e-3  # the edge channel is read


def test_pix2pixhd_default_size_and_errors():
    state, _ = pix2pixhd_official(36, n_local=1)
    assert convert("pix2pixhd", state, "cityscapes").resolution == (1024, 2048)  # 1024p
    with pytest.raises(SisgenInputError, match=r"'model\.1\.weight' reads 36 input channels.*"
                                               r"label_nc=151"):
        convert("pix2pixhd", state, "ade20k")
    with pytest.raises(SisgenInputError, match=r"feat_num=3 was given"):
        convert("pix2pixhd", state, "cityscapes", feat_num=3)
    bad = dict(state)
    bad["model1_2.0.conv_block.5.weight"] = torch.zeros(8, 8, 1, 1)
    with pytest.raises(SisgenInputError, match=r"model1_2\.0\.conv_block\.5\.weight.*"
                                               r"\(8, 8, 1, 1\).*\(8, 8, 3, 3\)"):
        convert("pix2pixhd", bad, "cityscapes", height=32, width=64)
    with pytest.raises(SisgenInputError, match="no residual blocks"):
        convert("pix2pixhd", {"model.1.weight": torch.zeros(4, 36, 7, 7)}, "cityscapes")


def test_pix2pixhd_feature_encoder_matches_official(tmp_path):
    t = _Tensors(8)
    seq = _p2p_sequence(3, 4, 2, 0, output_nc=3)  # Encoder: no residual blocks
    _p2p_tensors(t, "model", seq, batch=False)
    path = tmp_path / "latest_net_E.pth"
    torch.save(t.state, path)
    enc = convert_feature_encoder(path)
    assert enc.config == dict(input_nc=3, feat_num=3, nef=4, n_downsampling=2,
                              norm="instance")
    g = torch.Generator().manual_seed(3)
    img = torch.rand(2, 3, 32, 64, generator=g) * 2 - 1
    inst = torch.randint(0, 3, (2, 4, 8), generator=g).repeat_interleave(8, 1)
    inst = inst.repeat_interleave(8, 2) * 1000 + 26
    with torch.no_grad():
        feats = _p2p_run(t.state, "model", seq, img)
        ref = feats.clone()
        for b in range(2):  # the official per-instance mean, sample by sample
            for i in inst[b].unique():
                m = inst[b] == i
                ref[b][:, m] = feats[b][:, m].mean(1, keepdim=True)
        assert (enc(img, inst) - ref).abs().max() <= TOL
    torch.save({"model.1.weight": torch.zeros(4, 3, 7, 7)}, path)
    with pytest.raises(SisgenInputError, match="1 convs under 'model.'") as info:
        convert_feature_encoder(path)
    assert str(path) in str(info.value)


# ------------------------------------------------------------------------ files and CLI
def test_pickle_requiring_file_is_refused(tmp_path):
    path = tmp_path / "latest_net_G.pth"
    torch.save({"opt": argparse.Namespace(label_nc=35), "fc.weight": torch.zeros(1)}, path)
    with pytest.raises(SisgenInputError, match="pickle") as info:
        convert("oasis", path, "cityscapes")
    assert str(path) in str(info.value)
    with pytest.raises(SisgenInputError, match="pickle"):
        load_official_state_dict(path)


def test_cli_round_trip(tmp_path, capsys):
    state = oasis_official_state(35, seed=5)
    ckpt = tmp_path / "best_EMA.pth"
    torch.save({f"module.{k}": v for k, v in state.items()}, ckpt)  # DataParallel prefix
    out = tmp_path / "oasis_cs"
    assert cli_main(["convert", "oasis", "--ckpt", str(ckpt), "--dataset", "cityscapes",
                     "--out", str(out), "--option", "height=32", "--option", "width=64"]) == 0
    assert "converted" in capsys.readouterr().out
    model = load_model(out).eval()
    assert model.resolution == (32, 64)
    lab = _labels(34, 32, 64)
    z = torch.randn(2, 64, generator=torch.Generator().manual_seed(9))
    with torch.no_grad():
        ref = oasis_official_forward(state, oasis_official_onehot(lab, "cityscapes"), z)
        assert (model(lab, None, official_noise(z, 32, 64)) - ref).abs().max() <= TOL
    # a mismatching file: exit code 2 and a message naming the file
    torch.save({k: v for k, v in state.items() if k != "fc.bias"}, ckpt)
    assert cli_main(["convert", "oasis", "--ckpt", str(ckpt), "--dataset", "cityscapes",
                     "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert str(ckpt) in err and "'fc.bias'" in err
