"""Every zoo model trains on its tiny ToyCity preset; each objective's loss terms and options."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from sisgen.errors import SisgenInputError
from sisgen.models import available_models, build_model, load_model
from sisgen.models.registry import TINY_OVERRIDES
from sisgen.training import Trainer
from sisgen.training.config import PRESET_DIR, load_config
from sisgen.training.objective import available_objectives, objective_for
from sisgen.training.perceptual import VGG19Features
from sisgen.training.sesame import centre_box, training_masks

SPADE_TERMS = {"g_gan", "g_fm", "d"}
#: The loss terms each model logs with its tiny preset (no VGG weights given).
TERMS = {
    **{m: SPADE_TERMS for m in ("spade", "clade", "clade_icpe", "va_spade", "va_clade",
                                "posgen")},
    "oasis": {"g_gan", "d_fake", "d_real", "d_labelmix"},
    "va_oasis": {"g_gan", "d_fake", "d_real", "d_labelmix"},
    "pix2pixhd": {"g_gan", "g_fm", "d_fake", "d_real"},
    "pix2pixhd_local": {"g_gan", "g_fm", "d_fake", "d_real"},
    "ccfpse": {"g_gan", "g_fm", "g_kld", "d_fake", "d_real"},
    "lggan": {"g_gan", "g_fm", "g_class", "g_l1_local", "d_fake", "d_real"},
    "sesame": {"g_gan", "g_fm", "d_fake", "d_real"},
    "safm": {"g_gan", "g_fm", "g_seg_real", "g_seg_fake", "d_fake", "d_real"},
}
#: Shrunken discriminator / segmenter arguments (only those an objective takes are used).
SMALL_NETS = {"ndf": 4, "n_layers": 2, "segnet_ndf": 4, "segnet_blocks": 3}
#: Beyond the registry's tiny overrides: fewer contour points for SAFM's shape descriptor.
SMALLER = {"safm": {"max_contour_points": 64}}


def test_every_model_has_an_objective_preset_and_expected_terms():
    models = set(available_models())
    assert models <= set(available_objectives())
    assert models == {p.stem[len("toycity_"):-len("_tiny")]
                      for p in PRESET_DIR.glob("toycity_*_tiny.yaml")}
    assert models == set(TERMS)


def _tiny_config(model: str, out_dir):
    cfg = load_config(f"toycity_{model}_tiny", [
        "steps=2", "source.length=4", "batch_size=2", "height=64", "width=64",
        "sample_every=0", "validate=false", f"out_dir={out_dir}", "log_every=1",
        "checkpoint_every=100", "ema_bn_batches=1", "threads=1"])
    objective = type(objective_for(build_model(model, dataset="tiny"), cfg.losses))
    small = {k: v for k, v in SMALL_NETS.items() if k in objective.default_discriminator}
    losses = dict(cfg.losses)
    if "seg_fake_start_epoch" in losses:
        losses["seg_fake_start_epoch"] = 0  # SAFM's Fake_seg from the first epoch
    return dataclasses.replace(
        cfg, model_args={**TINY_OVERRIDES.get(model, {}), **SMALLER.get(model, {})},
        discriminator={**cfg.discriminator, **small}, losses=losses)


@pytest.mark.parametrize("model", available_models())
def test_every_model_trains_on_its_tiny_preset(model, tmp_path):
    cfg = _tiny_config(model, tmp_path / "run")
    torch.manual_seed(0)
    trainer = Trainer(cfg, progress=False)
    before = {name: {k: v.clone() for k, v in net.state_dict().items()}
              for name, net in (("G", trainer.G), ("D", trainer.objective.d_nets),
                                ("extra", trainer.objective.g_nets))}
    model_dir = trainer.fit()
    for name, net in (("G", trainer.G), ("D", trainer.objective.d_nets),
                      ("extra", trainer.objective.g_nets)):
        params = dict(net.named_parameters())
        changed = [k for k in params if not torch.equal(params[k].detach(), before[name][k])]
        assert len(changed) == len(params), f"{name}: untrained {set(params) - set(changed)}"
    lines = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [1, 2] and all(x["skipped"] == 0 for x in lines)
    for x in lines:
        terms = {k for k in x if k.startswith(("g_", "d")) and k != "g_total"}
        assert terms == TERMS[model]
        assert all(math.isfinite(x[k]) for k in (*terms, "g_total"))
    loaded = load_model(model_dir)
    assert loaded.model_name == model and type(loaded) is type(trainer.G)
    for k, v in trainer.final_generator().state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v.cpu())


def _batch(g, n: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    labels, edges = g.example_inputs(n, seed)[:2]
    h, w = g.resolution
    if edges is None:
        edges = torch.zeros(n, 1, h, w)
    inst = torch.zeros(n, h, w, dtype=torch.int64)
    inst[:, 8:24, 16:40] = 3
    image = torch.rand(n, 3, h, w, generator=gen) * 2 - 1
    return {"labels": labels, "instances": inst, "edges": edges, "image": image}


def _terms(model: str, losses: dict | None = None, perceptual=None, **model_args):
    g = build_model(model, dataset="tiny", **model_args)
    small = {"ndf": 4, "n_layers": 2, "segnet_ndf": 4, "segnet_blocks": 3}
    cls = type(objective_for(g))
    objective = objective_for(g, losses, {k: v for k, v in small.items()
                                    if k in cls.default_discriminator}, perceptual)
    batch = _batch(g)
    noise = torch.randn(2, *g.noise_shape()) if g.noise_shape() else None
    g_loss, g_terms, fake = objective.generator_loss(g, batch, noise)
    d_loss, d_terms = objective.discriminator_loss(g, batch, fake.detach())
    assert torch.isclose(g_loss, sum(g_terms.values())) and torch.isfinite(d_loss)
    assert torch.isclose(d_loss, sum(d_terms.values()))
    return objective, set(g_terms), set(d_terms)


def test_perceptual_term_follows_the_weights():
    vgg = VGG19Features()
    _, g_terms, _ = _terms("pix2pixhd", perceptual=vgg)
    assert "g_vgg" in g_terms  # the paper's default weight (10) once VGG weights are given
    _, g_terms, _ = _terms("sesame", {"vgg": 0.0}, perceptual=vgg)
    assert "g_vgg" not in g_terms
    with pytest.raises(SisgenInputError, match="perceptual_weights"):
        _terms("lggan", {"vgg": 10.0})
    with pytest.raises(SisgenInputError, match="does not know losses"):
        _terms("oasis", {"lambda_labelmix": 5.0})


def test_oasis_labelmix_and_ccfpse_prior_mode():
    _, _, d_terms = _terms("oasis", {"labelmix": 0.0})
    assert d_terms == {"d_fake", "d_real"}
    objective, g_terms, _ = _terms("ccfpse", {"kld": 0.0})
    assert "g_kld" not in g_terms and "E" not in objective.g_nets


def test_pix2pixhd_feature_encoder_trains_with_the_generator():
    objective, g_terms, _ = _terms("pix2pixhd", feat_num=3)
    assert "E" in objective.g_nets and g_terms == {"g_gan", "g_fm"}
    g = build_model("pix2pixhd", dataset="tiny", feat_num=3)
    out = objective.sample(g, _batch(g), None)
    assert out.shape == (2, 3, 64, 64)


def test_safm_fake_seg_starts_after_its_epoch():
    g = build_model("safm", dataset="tiny", max_contour_points=64)
    objective = objective_for(g, {"seg_fake_start_epoch": 2}, {"ndf": 4, "n_layers": 2,
                                                         "segnet_ndf": 4, "segnet_blocks": 3})
    batch = _batch(g)
    objective.epoch = 1  # the second epoch: 2 > 2 is false
    assert "g_seg_fake" not in objective.generator_loss(g, batch, None)[1]
    objective.epoch = 2
    assert "g_seg_fake" in objective.generator_loss(g, batch, None)[1]
    assert objective_for(build_model("safm", dataset="cityscapes", ngf=4, hidden=8,
                                  shape_hidden=4)).weights["seg_fake_start_epoch"] == 60


def test_lggan_discriminator_step_alone_regenerates():
    g = build_model("lggan", dataset="tiny")
    objective = objective_for(g, {}, {"ndf": 4, "n_layers": 2})
    batch = _batch(g)
    with torch.no_grad():
        fake = g(batch["labels"], batch["edges"])
    loss, terms = objective.discriminator_loss(g, batch, fake)
    assert set(terms) == {"d_fake", "d_real"} and torch.isfinite(loss)


def test_sesame_training_masks():
    inst = torch.zeros(64, 32, 48, dtype=torch.int64)
    inst[:, 4:10, 6:20] = 7
    torch.manual_seed(1)
    masks = training_masks(inst)
    torch.manual_seed(1)
    assert torch.equal(masks, training_masks(inst))  # the global RNG decides
    assert masks.shape == (64, 1, 32, 48) and set(masks.unique().tolist()) == {0.0, 1.0}
    box = torch.zeros(32, 48)
    box[4:10, 6:20] = 1
    is_instance = [torch.equal(m[0], box) for m in masks]
    assert 10 < sum(is_instance) < 54  # about half instance boxes, half random boxes
    for m, inst_box in zip(masks, is_instance, strict=True):
        if not inst_box:  # a random box: a quarter to a half of each side
            ys, xs = torch.nonzero(m[0], as_tuple=True)
            assert 8 <= int(ys.max() - ys.min()) + 1 <= 16
            assert 12 <= int(xs.max() - xs.min()) + 1 <= 24
    # no instances: always a random box
    empty = training_masks(torch.zeros(4, 32, 48, dtype=torch.int64))
    assert all(0 < m.sum() < 32 * 48 for m in empty)
    assert centre_box(1, 8, 8)[0, 0].sum() == 16
