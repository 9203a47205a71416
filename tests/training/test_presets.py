"""The packaged paper presets: they load, name real objectives and resolutions, and dry-run."""

from __future__ import annotations

from functools import cache

import pytest
import yaml

from sisgen.cli import main
from sisgen.models import build_model
from sisgen.models.registry import dataset_spec
from sisgen.training.config import PRESET_DIR, TrainConfig, load_config
from sisgen.training.data import Augmentation
from sisgen.training.objective import objective_for
from sisgen.training.perceptual import VGG19Features

DATASETS = ("cityscapes", "ade20k", "coco_stuff")

#: Which datasets each paper trains (and so has a preset for).
PAPER_DATASETS = {
    "spade": DATASETS, "clade": DATASETS, "clade_icpe": DATASETS, "oasis": DATASETS,
    "va_spade": DATASETS, "va_clade": DATASETS, "va_oasis": DATASETS, "ccfpse": DATASETS,
    "safm": DATASETS, "pix2pixhd": ("cityscapes",), "pix2pixhd_local": ("cityscapes",),
    "lggan": ("cityscapes", "ade20k"), "sesame": ("cityscapes", "ade20k"),
    "posgen": ("cityscapes", "coco_stuff"),
}

#: Presets trained at the paper's resolution rather than the zoo's dataset size.
PAPER_SIZE = {"pix2pixhd_cityscapes": (512, 1024), "pix2pixhd_local_cityscapes": (1024, 2048)}

PRESETS = sorted(f"{m}_{d}" for m, ds in PAPER_DATASETS.items() for d in ds)


def test_every_paper_preset_is_packaged() -> None:
    packaged = {p.stem for p in PRESET_DIR.glob("*.yaml")
                if p.stem.endswith(DATASETS) and not p.stem.startswith("toycity")}
    assert packaged == set(PRESETS)


@cache
def _perceptual() -> VGG19Features:
    # random weights: the objectives only need the module to exist to accept a vgg weight
    return VGG19Features()


@pytest.mark.parametrize("name", PRESETS)
def test_preset_loads_with_paper_fields(name: str) -> None:
    cfg = load_config(name)
    model, dataset = cfg.model, cfg.dataset
    assert f"{model}_{dataset}" == name
    assert cfg.source == {"kind": dataset, "root": f"data/{dataset}", "split": "train"}
    spec, _ = dataset_spec(dataset)
    assert (cfg.height, cfg.width) == PAPER_SIZE.get(name, (spec.height, spec.width))
    assert cfg.steps is None and cfg.epochs is not None and cfg.epochs >= 100
    assert cfg.amp == "none" and cfg.perceptual_weights is None
    assert cfg.out_dir == f"runs/{name}"
    assert 0 < cfg.lr_g <= 4e-4 and 0 < cfg.lr_d <= 4e-4
    assert cfg.lr_decay_start in (None, 0.5)
    assert 0.0 <= cfg.ema_decay < 1.0
    # the augmentation is one the data pipeline accepts at the training size
    Augmentation.from_dict(cfg.augment, (cfg.height, cfg.width))
    header = (PRESET_DIR / f"{name}.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert header.startswith("# ") and "Sources:" in header


@pytest.mark.parametrize("name", PRESETS)
def test_preset_losses_and_discriminator_fit_the_objective(name: str) -> None:
    cfg = load_config(name)
    # every loss and discriminator key is given, so no paper value hides behind a default
    G = build_model(cfg.model, dataset="tiny", **cfg.model_args)
    objective = objective_for(G, cfg.losses, cfg.discriminator, _perceptual())
    assert set(cfg.losses) == set(type(objective).default_losses)
    assert set(cfg.discriminator) == set(type(objective).default_discriminator)
    assert objective.weights == {k: float(v) for k, v in cfg.losses.items()}
    assert len(objective.d_nets) >= 1


def test_vgg_presets_need_the_weights_file() -> None:
    from sisgen.errors import SisgenInputError

    cfg = load_config("spade_cityscapes")
    assert cfg.losses["vgg"] == 10.0
    G = build_model(cfg.model, dataset="tiny")
    with pytest.raises(SisgenInputError, match="perceptual_weights"):
        objective_for(G, cfg.losses, cfg.discriminator, None)


@pytest.mark.parametrize("name", sorted(PAPER_SIZE))
def test_paper_size_is_one_the_architecture_takes(name: str) -> None:
    # shrunk widths (dataset="tiny"), the preset's height and width
    cfg = load_config(name)
    G = build_model(cfg.model, dataset="tiny", **cfg.model_args, height=cfg.height,
                    width=cfg.width)
    assert tuple(G.example_inputs(1)[0].shape[-2:]) == (cfg.height, cfg.width)


def _dry_run(capsys: pytest.CaptureFixture[str], *args: str) -> dict:
    assert main(["train", *args, "--dry-run"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_dry_run_prints_the_resolved_config(capsys: pytest.CaptureFixture[str]) -> None:
    printed = _dry_run(capsys, "--config", "oasis_cityscapes")
    assert printed == load_config("oasis_cityscapes").to_dict()
    assert set(printed) == set(TrainConfig().to_dict())
    assert printed["lr_g"] == 0.0004 and printed["losses"]["labelmix"] == 5.0


def test_dry_run_applies_overrides(capsys: pytest.CaptureFixture[str]) -> None:
    overrides = ["batch_size=4", "losses.vgg=0", "discriminator.ndf=32", "amp=bf16"]
    printed = _dry_run(capsys, "--config", "spade_ade20k", *overrides)
    assert printed == load_config("spade_ade20k", overrides).to_dict()
    assert printed["batch_size"] == 4 and printed["amp"] == "bf16"
    assert printed["losses"] == {"gan": 1.0, "fm": 10.0, "vgg": 0, "kld": 0.0, "l1": 0.0,
                                "ms": 0.0, "seg": 0.0}
    assert printed["discriminator"]["ndf"] == 32 and printed["discriminator"]["n_layers"] == 4
