"""Smoke test of ``sisgen quickstart`` with a seconds-long budget (the real one runs minutes)."""

from __future__ import annotations

import json

import numpy as np
from pycocotools.coco import COCO

from sisgen.io import read_rgb


def test_quickstart_end_to_end_small(tmp_path, monkeypatch):
    from sisgen.cli import main
    from sisgen.training import config as train_config

    # shrink the preset so the smoke test stays fast; the pipeline is the same
    real_load = train_config.load_config

    def small(name, overrides=None):
        cfg = real_load(name, overrides)
        cfg.model_args.update(ngf=4, spade_hidden=8, z_dim=8)
        cfg.source["length"] = 8
        cfg.ndf, cfg.batch_size = 8, 2
        return cfg

    monkeypatch.setattr("sisgen.training.load_config", small)
    out = tmp_path / "qs"
    rc = main(["quickstart", "--out", str(out), "--minutes", "0.02", "--num-images", "6",
               "--size", "32x64"])
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["images_written"] == 6 and summary["images_failed"] == 0
    assert summary["parity_max_abs_diff"] <= 1e-4
    assert summary["train_steps"] >= 1
    sheet = read_rgb(out / "contact_sheet.png")
    assert sheet.shape[0] > 64 and sheet.shape[1] >= 3 * 64
    coco = COCO(str(out / "dataset" / "coco" / "annotations" / "instances_train2017.json"))
    assert len(coco.getImgIds()) == 6
    lines = (out / "dataset" / "manifest.jsonl").read_text().splitlines()
    run, *manifest = [json.loads(x) for x in lines]
    assert run["status"] == "run" and run["model"]["name"] == "spade"
    assert len(manifest) == 6 and all(m["backend"] == "onnxruntime" for m in manifest)
    assert len({m["seed"] for m in manifest}) == 6
    assert (out / "train" / "model" / "model.safetensors").is_file()
    assert np.isfinite(summary["timings_s"]["train_s"])
