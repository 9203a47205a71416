"""End-to-end generation: source -> edits -> engine -> writers -> manifest, read back."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from pycocotools.coco import COCO

import sisgen
from sisgen import sources
from sisgen.edits import Recipe
from sisgen.engines import Generator
from sisgen.engines.torch_engine import TorchEngine
from sisgen.generate import generate, sample_seed
from sisgen.io import read_label_png, read_rgb
from sisgen.models import build_model

RECIPE = """
edits:
  - {op: swap, a: car, b: person, p: 0.5}
  - {op: relabel, mapping: {terrain: vegetation}, p: 0.5}
  - {op: remove_instances, classes: [person], fraction: 0.5}
  - {op: hflip, p: 0.5}
"""


def tiny_generator(dataset: str, height: int = 32, width: int = 64) -> Generator:
    torch_model = build_model("spade", dataset=dataset, ngf=2, spade_hidden=4, z_dim=4,
                              height=height, width=width, num_upsampling_layers="normal")
    return Generator(TorchEngine(torch_model, "cpu"), torch_model.vocabulary, (height, width),
                     torch_model.noise_spec(), torch_model.model_name, "testhash",
                     torch_model.uses_edges, backend="torch")


@pytest.fixture(scope="module")
def toy_gen():
    return tiny_generator("toycity")


def _paint_coco(coco: COCO, img_id: int, shape: tuple[int, int]) -> np.ndarray:
    """Rasterize an image's COCO annotations: stuff first, things over it."""
    out = np.full(shape, 255, np.uint8)
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[img_id]))
    for ann in anns:
        out[coco.annToMask(ann).astype(bool)] = ann["category_id"] - 1
    return out


def test_sample_seed_depends_only_on_run_seed_and_index():
    assert sample_seed(0, 5) == sample_seed(0, 5)
    assert len({sample_seed(0, i) for i in range(100)}) == 100
    assert sample_seed(0, 5) != sample_seed(1, 5)


def test_generate_toycity_writes_readable_datasets(tmp_path, toy_gen):
    src = sources.open("toycity", split="val", size=(32, 64), length=6)
    report = generate(toy_gen, src, tmp_path, recipe=RECIPE, seed=3, samples_per_map=2,
                      batch_size=4, progress=False)
    assert report.written == 12 and report.failed == 0
    run, *lines = [json.loads(x) for x in (tmp_path / "manifest.jsonl").read_text().splitlines()]
    assert run["status"] == "run" and run["seed"] == 3 and run["total"] == 12
    assert [x["index"] for x in lines] == list(range(12))  # in sample order
    assert len(lines) == 12 and all(x["status"] == "ok" for x in lines)
    assert {x["seed"] for x in lines} == {sample_seed(3, i) for i in range(12)}
    assert all(x["model_hash"] == "testhash" and x["recipe"] for x in lines)
    assert all(len(x["edits"]) == 4 for x in lines)

    # COCO: loads in pycocotools; masks rasterize back to the label PNG written beside
    ann_dir = tmp_path / "coco" / "annotations"
    coco_inst = COCO(str(ann_dir / "instances_train2017.json"))
    coco_stuff = COCO(str(ann_dir / "stuff_train2017.json"))
    assert len(coco_inst.getImgIds()) == 12
    for img in coco_inst.loadImgs(coco_inst.getImgIds()):
        stem = img["file_name"].rsplit(".", 1)[0]
        label = read_label_png(tmp_path / "coco" / "labels" / "train2017" / f"{stem}.png")
        painted = _paint_coco(coco_stuff, img["id"], label.shape)
        things = _paint_coco(coco_inst, img["id"], label.shape)
        painted[things != 255] = things[things != 255]
        np.testing.assert_array_equal(painted, label)

    # Cityscapes layout reads back through the cityscapes-layout source unchanged
    back = sources.open("cityscapes", tmp_path / "cityscapes", split="train",
                        vocabulary="toycity")
    assert len(back) == 12
    by_id = {x["sample"]: x for x in lines}
    for i in range(len(back)):
        lm = back[i]
        entry = by_id[lm.id]
        # regenerate the edited map from the manifest and compare
        orig = src.load(entry["source_index"])
        edited = Recipe.load(RECIPE)(orig, seed=entry["seed"], vocab=src.vocabulary)
        np.testing.assert_array_equal(lm.semantic, edited.semantic)
        assert (lm.instance > 0).sum() == (edited.instance > 0).sum()


def test_generate_across_batch_sizes_differs_at_most_by_rounding(tmp_path, toy_gen):
    src = sources.open("toycity", split="val", size=(32, 64), length=5)
    a = generate(toy_gen, src, tmp_path / "a", writers=("cityscapes",), batch_size=2, seed=9,
                 progress=False, writer_options={"cityscapes": {"image_format": "png"}})
    b = generate(toy_gen, src, tmp_path / "b", writers=("cityscapes",), batch_size=5, seed=9,
                 progress=False, writer_options={"cityscapes": {"image_format": "png"}})
    assert a.written == b.written == 5
    files = sorted((tmp_path / "a" / "cityscapes" / "leftImg8bit").rglob("*.png"))
    assert len(files) == 5
    for f in files:
        g = tmp_path / "b" / f.relative_to(tmp_path / "a")
        x, y = read_rgb(f).astype(int), read_rgb(g).astype(int)
        assert np.abs(x - y).max() <= 1  # same seeds; only float rounding may differ


def test_bad_sample_is_recorded_and_run_goes_on(tmp_path, toy_gen):
    # a folder source with one corrupt PNG and one map with ids outside the vocabulary
    src = sources.open("toycity", split="val", size=(32, 64), length=4)
    root = tmp_path / "maps"
    (root / "labels").mkdir(parents=True)
    for i in range(4):
        sisgen.io.write_image(root / "labels" / f"m{i}.png", src.load(i).semantic)
    (root / "labels" / "m1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    bad = src.load(2).semantic.copy()
    bad[0, 0] = 77
    sisgen.io.write_image(root / "labels" / "m2.png", bad)
    folder = sources.open("folder", root, vocabulary="toycity")
    report = generate(toy_gen, folder, tmp_path / "out", progress=False)
    assert report.written == 2 and report.failed == 2
    lines = [json.loads(x) for x in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    errors = [x for x in lines if x["status"] == "error"]
    assert {e["source_index"] for e in errors} == {1, 2}
    assert any("m1.png" in e["error"] for e in errors)
    assert any("m2.png" in e["error"] and "77" in e["error"] for e in errors)


def test_vocabulary_mismatch_is_refused(tmp_path, toy_gen):
    src = sources.open("toycity", split="val", size=(32, 64), length=1)
    other = tiny_generator("cityscapes")
    with pytest.raises(sisgen.SisgenInputError, match="vocabulary"):
        generate(other, src, tmp_path, progress=False)


@pytest.mark.samples
def test_generate_on_real_cityscapes(tmp_path, cityscapes_root):
    gen = tiny_generator("cityscapes", 32, 64)
    src = sources.open("cityscapes", cityscapes_root, split="val")
    report = generate(gen, src, tmp_path, recipe="edits: [{op: hflip}]", limit=3,
                      progress=False)
    assert report.written == 3
    back = sources.open("cityscapes", tmp_path / "cityscapes", split="train")
    for i in range(3):
        lm = src.load(i)  # edits run at source resolution, then the map is resized
        flipped = sisgen.LabelMap(lm.semantic[:, ::-1].copy(), None, {"id": lm.id})
        expected = flipped.resized((32, 64)).semantic
        np.testing.assert_array_equal(back.load(i).semantic, expected)


@pytest.mark.samples
def test_generate_on_real_coco(tmp_path, coco_root):
    gen = tiny_generator("coco_stuff", 32, 32)
    src = sources.open("coco", coco_root, split="val2017")
    report = generate(gen, src, tmp_path, writers=("coco",), limit=3, progress=False)
    assert report.written == 3
    coco = COCO(str(tmp_path / "coco" / "annotations" / "instances_train2017.json"))
    assert len(coco.getImgIds()) == 3


def test_cli_generate_with_onnx_model(tmp_path, toy_gen):
    from sisgen.cli import main
    from sisgen.export import export_onnx

    model = build_model("spade", dataset="toycity", ngf=2, spade_hidden=4, z_dim=4, height=32,
                        width=64)
    model.save(tmp_path / "m")
    assert main(["export", "onnx", "--model", str(tmp_path / "m"),
                 "--out", str(tmp_path / "m.onnx")]) == 0
    del export_onnx
    rc = main(["generate", "--model", str(tmp_path / "m.onnx"), "--source", "toycity",
               "--split", "val", "--out", str(tmp_path / "out"), "--limit", "3",
               "--recipe", "edits: [{op: hflip, p: 0.5}]"])
    assert rc == 0
    assert len(list((tmp_path / "out" / "cityscapes" / "leftImg8bit").rglob("*.jpg"))) == 3
    assert main(["info", str(tmp_path / "m.onnx")]) == 0
    shutil.rmtree(tmp_path / "out")
    # a missing model is a clean error, not a traceback
    assert main(["generate", "--model", str(tmp_path / "nope.onnx"), "--source", "toycity",
                 "--out", str(tmp_path / "x")]) == 2


@pytest.mark.samples
def test_bad_polygon_in_coco_json_is_recorded_and_skipped(tmp_path, coco_root):
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    for kind in ("instances", "stuff"):
        data = json.loads((coco_root / f"annotations/{kind}_val2017.json").read_text())
        if kind == "instances":
            bad_img = data["images"][1]["id"]
            ann = next(a for a in data["annotations"] if a["image_id"] == bad_img)
            ann["segmentation"] = [[1.0, 2.0, "x", 4.0, 5.0]]  # not a number
        (root / f"annotations/{kind}_val2017.json").write_text(json.dumps(data))
    gen = tiny_generator("coco_stuff", 32, 32)
    src = sources.open("coco", root, split="val2017")
    report = generate(gen, src, tmp_path / "out", writers=("coco",), limit=3, progress=False)
    assert report.written == 2 and report.failed == 1
    lines = [json.loads(x) for x in (tmp_path / "out/manifest.jsonl").read_text().splitlines()]
    bad = [x for x in lines if x["status"] == "error"]
    assert len(bad) == 1 and bad[0]["source_index"] == 1
    assert "instances_val2017.json" in bad[0]["error"]
