"""One sample path: ``sisgen generate`` and ``SynthesisDataset`` make the same samples.

For every registered edit op (a test fails when an op is added without an example here),
the same (source, recipe, seed, sample index) gives bit-identical label maps and images
through both, with the run's automatic instance bank and noise-region marks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sisgen import sources
from sisgen.edits import available_edits, edit_class
from sisgen.engines import Generator
from sisgen.engines.torch_engine import TorchEngine
from sisgen.generate import generate
from sisgen.integrations import SynthesisDataset
from sisgen.io import read_label_png, read_rgb
from sisgen.manifest import read_manifest
from sisgen.models import build_model

SIZE = (32, 64)
#: One example step per edit op (ToyCity ids: car 8, person 9; instance ids 8000, 8001...).
STEPS = {
    "relabel": "{op: relabel, mapping: {terrain: vegetation}}",
    "swap": "{op: swap, a: car, b: person, p: 0.5}",
    "remove_instances": "{op: remove_instances, classes: [person], fraction: 0.5}",
    "flip": "{op: flip, direction: vertical, p: 0.5}",
    "hflip": "{op: hflip, p: 0.5}",
    "scale": "{op: scale, range: [0.8, 1.25]}",
    "pad": "{op: pad, size: [72, 136]}",
    "crop": "{op: crop, size: [56, 112]}",
    "dilate": "{op: dilate, class: pole, pixels: 1}",
    "erode": "{op: erode, class: car, pixels: 1}",
    "resample_noise": "{op: resample_noise, class: car}",
    "paste": "{op: paste, classes: [car, person], range: [1, 2], on: [road, sidewalk]}",
    "one_of": "{op: one_of, steps: [{op: hflip}, {op: scale, factor: 0.9}]}",
    "some_of": "{op: some_of, n: 1, steps: [{op: dilate, class: pole}, {op: hflip}]}",
    "stroke": "{op: stroke, class: road, points: [[5, 5], [20, 40]], radius: 2}",
    "fill": "{op: fill, class: sidewalk, box: [2, 2, 10, 20]}",
    "flood_fill": "{op: flood_fill, class: terrain, at: [1, 1]}",
    "canvas": "{op: canvas, class: road}",
    "delete_instance": "{op: delete_instance, instance: 8001}",
    "move_instance": "{op: move_instance, instance: 8000, by: [2, -3]}",
    "scale_instance": "{op: scale_instance, instance: 8000, factor: 1.2}",
    "flip_instance": "{op: flip_instance, instance: 8000}",
    "relabel_instance": "{op: relabel_instance, instance: 8000, class: person}",
    "paste_item": "{op: paste_item, item: 0, at: [50, 60]}",
}


@pytest.fixture(scope="module")
def src():
    return sources.open("toycity", split="val", size=(64, 128), length=6)


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    model = build_model("oasis", dataset="toycity", ngf=4, z_dim=8, spade_hidden=8,
                        height=SIZE[0], width=SIZE[1]).eval()
    return Generator.from_model(TorchEngine(model, "cpu"), model, model_hash="t")


def test_every_edit_op_has_an_example():
    # sisgen's own ops (other tests register custom ops in the same registry)
    ours = {op for op in available_edits()
            if edit_class(op).__module__.startswith("sisgen.edits.")}
    assert set(STEPS) == ours


@pytest.mark.parametrize("op", sorted(STEPS))
def test_generate_and_dataset_make_the_same_samples(op, src, gen, tmp_path):
    recipe = f"edits: [{STEPS[op]}]"
    if op == "paste_item":  # the editor's paste of one bank item: a bank file
        from sisgen.instance_bank import InstanceBank

        InstanceBank.from_source(src).save(tmp_path / "bank.npz")
        recipe = f"edits: [{{op: paste_item, item: 0, at: [50, 60], bank: {tmp_path}/bank.npz}}]"
    out = tmp_path / "out"
    generate(gen, src, out, writers=("folder",), recipe=recipe, seed=11, samples_per_map=2,
             batch_size=4, progress=False, writer_options={"folder": {"image_format": "png"}})
    entries = [e for e in read_manifest(out / "manifest.jsonl") if e["status"] != "run"]
    ok = [e for e in entries if e["status"] == "ok"]
    assert ok, entries[:2]
    ds = SynthesisDataset(src, gen, recipe=recipe, seed=11, samples_per_map=2, batch_size=4)
    items = {it["index"]: it for it in ds.generate_indices([e["index"] for e in ok])}
    assert set(items) == {e["index"] for e in ok}
    for e in ok:
        item = items[e["index"]]
        label = read_label_png(out / "folder" / e["outputs"]["folder"]["label"])
        image = read_rgb(out / "folder" / e["outputs"]["folder"]["image"])
        assert item["id"] == e["sample"]
        np.testing.assert_array_equal(item["label"], label)
        np.testing.assert_array_equal(item["image"], image)


def test_generate_and_dataset_agree_under_a_plan(src, gen, tmp_path):
    from sisgen.curation import Plan

    plan = Plan.from_counts(src, [1, 3, 0, 2], "hardness")
    plan.save(tmp_path / "plan.json")
    recipe = f"edits: [{STEPS['paste']}, {STEPS['hflip']}]"
    out = tmp_path / "out"
    generate(gen, src, out, writers=("folder",), recipe=recipe, seed=5, plan=plan,
             batch_size=4, progress=False, writer_options={"folder": {"image_format": "png"}})
    ok = [e for e in read_manifest(out / "manifest.jsonl") if e["status"] == "ok"]
    assert [e["source_index"] for e in ok] == [0, 1, 1, 1, 3, 3]
    ds = SynthesisDataset(src, gen, recipe=recipe, seed=5, plan=tmp_path / "plan.json",
                          batch_size=4)
    assert ds.epoch_length == 6
    items = list(ds)
    assert [it["index"] for it in items] == [e["index"] for e in ok]
    for item, e in zip(items, ok, strict=True):
        assert item["id"] == e["sample"] and item["seed"] == e["seed"]
        label = read_label_png(out / "folder" / e["outputs"]["folder"]["label"])
        image = read_rgb(out / "folder" / e["outputs"]["folder"]["image"])
        np.testing.assert_array_equal(item["label"], label)
        np.testing.assert_array_equal(item["image"], image)
    with pytest.raises(ValueError, match="samples_per_map or a plan"):
        SynthesisDataset(src, gen, plan=plan, samples_per_map=2)
