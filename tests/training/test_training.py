"""Training: config loading, discriminator, losses and a few trainer steps with resume."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from sisgen.errors import SisgenInputError
from sisgen.models import DATASETS, available_models, load_model
from sisgen.training import TrainConfig, Trainer, load_config
from sisgen.training.config import PRESET_DIR
from sisgen.training.discriminator import MultiScaleDiscriminator
from sisgen.training.losses import feature_matching_loss, hinge_d_loss, hinge_g_loss

PRESETS = sorted(p.stem for p in PRESET_DIR.glob("*.yaml"))


# ------------------------------------------------------------------------------ config
@pytest.mark.parametrize("name", PRESETS)
def test_packaged_presets_load(name):
    cfg = load_config(name)
    assert cfg.model in available_models()
    assert cfg.dataset in DATASETS
    assert cfg.height % 32 == 0 and cfg.width % 32 == 0
    assert cfg.batch_size >= 1
    # a run is bounded by steps or by epochs (the paper presets count epochs)
    assert (cfg.steps or 0) >= 1 or (cfg.epochs or 0) >= 1
    # the same file by path gives the same config
    assert load_config(PRESET_DIR / f"{name}.yaml") == cfg


def test_load_config_yaml_with_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "model: clade\n"
        "model_args:\n  ngf: 8\n  norm: instance\n"
        "height: 64\nwidth: 128\nsteps: 10\n"
        "source: {kind: toycity, length: 100}\n"
    )
    cfg = load_config(path, ["model_args.z_dim=0", "batch_size=3", "lr_g=0.0005",
                             "model_args.ngf=4", "source.length=5", "augment.flip=false"])
    assert isinstance(cfg, TrainConfig)
    assert cfg.model == "clade" and cfg.steps == 10 and cfg.height == 64
    assert cfg.model_args == {"ngf": 4, "norm": "instance", "z_dim": 0}
    assert cfg.batch_size == 3 and isinstance(cfg.batch_size, int)
    assert cfg.lr_g == pytest.approx(5e-4)
    assert cfg.augment == {"flip": False}
    assert cfg.source["length"] == 5 and cfg.source["kind"] == "toycity"
    # untouched keys keep the dataclass defaults
    assert cfg.lr_d == TrainConfig().lr_d


def test_load_config_defaults_and_overrides_only():
    cfg = load_config(None, ["steps=7"])
    assert cfg.steps == 7
    assert dataclasses.replace(cfg, steps=TrainConfig().steps) == TrainConfig()


def test_load_config_unknown_key_names_file(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("model: spade\nlearning_rate: 0.1\n")
    with pytest.raises(SisgenInputError, match="learning_rate") as ei:
        load_config(path)
    assert ei.value.path == str(path)
    assert "bad.yaml" in str(ei.value)
    good = tmp_path / "good.yaml"
    good.write_text("model: spade\n")
    with pytest.raises(SisgenInputError, match="bogus"):
        load_config(good, ["bogus=1"])


@pytest.mark.parametrize("text,match", [("model: [unclosed\n", "YAML"),
                                        ("- a\n- b\n", "mapping"),
                                        ("steps: 0\n", "steps")])
def test_load_config_bad_files(tmp_path, text, match):
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(SisgenInputError, match=match) as ei:
        load_config(path)
    assert "broken.yaml" in str(ei.value)


def test_load_config_bad_override_and_missing_preset():
    with pytest.raises(SisgenInputError, match="key=value"):
        load_config(None, ["steps"])
    with pytest.raises(SisgenInputError, match="no_such_preset"):
        load_config("no_such_preset")


# ------------------------------------------------------------------------ discriminator
def test_multiscale_discriminator_features():
    torch.manual_seed(0)
    d = MultiScaleDiscriminator(in_channels=5 + 3, num_d=2, ndf=8, n_layers=3)
    seg = torch.zeros(2, 5, 32, 64)
    img = torch.randn(2, 3, 32, 64)
    out = d(seg, img)
    assert isinstance(out, list) and len(out) == 2
    for scale in out:
        assert isinstance(scale, list) and len(scale) == 3 + 1  # n_layers + logit layer
        assert scale[-1].shape[:2] == (2, 1)
        assert scale[0].shape[1] == 8
    # the second scale sees a half-size input
    assert out[1][0].shape[-1] < out[0][0].shape[-1]
    assert out[1][-1].numel() < out[0][-1].numel()
    (sum(s[-1].mean() for s in out)).backward()
    assert all(p.grad is not None for p in d.parameters())


# ------------------------------------------------------------------------------ losses
def _scales(*logits, feats=None):
    return [[*(feats or []), torch.tensor(lg)] for lg in logits]


def test_hinge_d_loss_values():
    real = _scales([2.0, 0.5], [1.0, -1.0])
    fake = _scales([-2.0, 0.0], [0.5, -3.0])
    # scale 0: real relu(1-x) = [0, .5] -> .25; fake relu(1+x) = [0, 1] -> .5
    # scale 1: real [0, 2] -> 1; fake [1.5, 0] -> .75; mean over scales = (0.75 + 1.75) / 2
    assert hinge_d_loss(real, fake).item() == pytest.approx(1.25)
    perfect = hinge_d_loss(_scales([1.0, 3.0]), _scales([-1.0, -5.0]))
    assert perfect.item() == 0.0


def test_hinge_g_loss_values():
    fake = _scales([1.0, 3.0], [-1.0, 0.0])
    # -(2) and -(-0.5) averaged over 2 scales
    assert hinge_g_loss(fake).item() == pytest.approx((-2.0 + 0.5) / 2)


def test_feature_matching_loss_values():
    r1, f1 = torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 2, 2)
    r2, f2 = torch.full((1, 1, 3), 2.0), torch.full((1, 1, 3), -1.0)
    real = [[r1, r2, torch.tensor([100.0])], [r1, torch.tensor([0.0])]]
    fake = [[f1, f2, torch.tensor([-100.0])], [r1.clone(), torch.tensor([9.0])]]
    # scale 0: |1-0| + |-1-2| = 4 (logits excluded); scale 1: 0; averaged over 2 scales
    assert feature_matching_loss(real, fake).item() == pytest.approx(2.0)
    # gradients go to the fake features only
    f1 = f1.clone().requires_grad_()
    r1 = r1.clone().requires_grad_()
    feature_matching_loss([[r1, torch.tensor(0.0)]], [[f1, torch.tensor(0.0)]]).backward()
    assert f1.grad is not None and r1.grad is None


# ----------------------------------------------------------------------------- trainer
def _tiny_cfg(out_dir, **kw) -> TrainConfig:
    args = dict(
        model="spade", dataset="toycity",
        model_args={"ngf": 4, "spade_hidden": 8, "z_dim": 8},
        height=32, width=64, source={"kind": "toycity", "length": 8}, batch_size=2,
        steps=3, discriminator={"ndf": 8, "n_layers": 3, "num_d": 2}, log_every=1, sample_every=2,
        checkpoint_every=2, out_dir=str(out_dir), seed=0,
    )
    args.update(kw)
    return TrainConfig(**args)


def _log_steps(out_dir) -> list[int]:
    lines = (out_dir / "log.jsonl").read_text().splitlines()
    return [json.loads(x)["step"] for x in lines]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    trainer = Trainer(_tiny_cfg(out), progress=False)
    g0 = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    model_dir = trainer.fit()
    return out, trainer, model_dir, g0


def test_trainer_writes_run_folder(trained):
    out, trainer, model_dir, g0 = trained
    assert trainer.step == 3
    assert (out / "checkpoint.pt").is_file()
    assert (out / "config.yaml").is_file()
    assert model_dir == out / "model"
    assert (model_dir / "config.json").is_file()
    assert (model_dir / "model.safetensors").is_file()
    assert sorted(p.name for p in (out / "samples").glob("*.png")) == ["step_0000002.png"]
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2, 3]
    for x in lines:
        for key in ("g_gan", "g_fm", "d"):
            assert isinstance(x[key], float) and x[key] == x[key]  # finite, not NaN
    # the generator actually trained
    changed = [k for k, v in trainer.G.state_dict().items() if not torch.equal(v, g0[k])]
    assert changed


def test_trained_model_loads(trained):
    out, trainer, model_dir, _ = trained
    m = load_model(model_dir)
    assert m.model_name == "spade" and m.vocabulary.name == "toycity"
    assert m.resolution == (32, 64)
    assert m.weights_hash() == trainer.final_generator().weights_hash()
    with torch.no_grad():
        img = m(*m.example_inputs(1))
    assert img.shape == (1, 3, 32, 64) and torch.isfinite(img).all()


def test_sample_grid_image(trained):
    from sisgen.io import read_rgb

    out = trained[0]
    im = read_rgb(out / "samples" / "step_0000002.png")
    # rows: one per batch item (2); columns: label | generated | real
    assert im.shape == (2 * 32, 3 * 64, 3)
    assert im.std() > 0


def test_resume_continues_step_count(trained, tmp_path):
    import shutil

    out, trainer, _, _ = trained
    run = tmp_path / "resumed"
    shutil.copytree(out, run)
    ckpt = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ckpt["step"] == 3
    t2 = Trainer(_tiny_cfg(run, steps=5), progress=False)
    assert t2.step == 0
    t2.load_checkpoint()
    assert t2.step == 3
    for k, v in trainer.G.state_dict().items():
        assert torch.equal(t2.G.state_dict()[k], v)
    t2.fit()
    assert t2.step == 5
    assert _log_steps(run) == [1, 2, 3, 4, 5]
    assert torch.load(run / "checkpoint.pt", weights_only=True)["step"] == 5
    assert (run / "samples" / "step_0000004.png").is_file()


def test_trainer_with_ema_and_clade(tmp_path):
    cfg = _tiny_cfg(tmp_path, model="clade", model_args={"ngf": 4, "z_dim": 0},
                    steps=2, ema_decay=0.9, sample_every=0, checkpoint_every=100)
    trainer = Trainer(cfg, progress=False)
    assert trainer.G_ema is not None
    model_dir = trainer.fit()
    assert not (tmp_path / "samples").exists()
    assert (tmp_path / "checkpoint.pt").is_file()  # always written at the end
    m = load_model(model_dir)
    assert m.config["cond"] == "clade" and m.noise_spec() == {}
    # the saved model is the EMA copy
    assert m.weights_hash() == trainer.G_ema.weights_hash()
    assert m.weights_hash() != trainer.G.weights_hash()


def test_trainer_rejects_mismatched_vocabulary(tmp_path):
    cfg = _tiny_cfg(tmp_path, dataset="ade20k")
    with pytest.raises(ValueError, match="vocabulary"):
        Trainer(cfg, progress=False)


def test_dotted_override_merges_into_default_section():
    from sisgen.training import load_config

    cfg = load_config(None, ["source.length=5"])
    assert cfg.source == {"kind": "toycity", "length": 5}
