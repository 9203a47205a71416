"""`sisgen generate` on the real samples with every edit, into every writer, read back.

For each sample the written label maps must equal the edited label map that the pipeline's
own prepare stage produces for that sample's seed (edits at source resolution, then a
nearest resize to the model resolution).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from pycocotools.coco import COCO

from sisgen import sources
from sisgen.cli import main
from sisgen.edits import Recipe
from sisgen.instance_bank import InstanceBank
from sisgen.io import read_label_png, read_rgb
from sisgen.manifest import read_manifest
from sisgen.models import build_model
from sisgen.samples import SamplePath

EVERY_EDIT = """
edits:
  - {op: relabel, mapping: {terrain: vegetation}, p: 0.5}
  - {op: swap, a: car, b: truck, p: 0.5}
  - {op: remove_instances, classes: [person], fraction: 0.5}
  - {op: paste, classes: [car, person], range: [1, 2], perspective: true, on: [road],
     occlusion: behind}
  - {op: dilate, class: pole, pixels: 2}
  - {op: erode, class: vegetation, pixels: 2}
  - one_of: [{op: flip, direction: horizontal}, {op: scale, factor: 0.75}]
  - some_of: {n: 1, steps: [{op: crop, size: [768, 1536]}, {op: pad, to_multiple: 512}]}
  - {op: resample_noise, class: car}
"""
COCO_EDITS = """
edits:
  - {op: relabel, mapping: {grass: dirt}, p: 0.5}
  - {op: swap, a: person, b: dog, p: 0.5}
  - {op: remove_instances, classes: [person], fraction: 0.5}
  - {op: paste, classes: [person], count: 1, on: [grass, dirt, road, sand, pavement]}
  - {op: dilate, class: tree, pixels: 2}
  - {op: erode, class: sky-other, pixels: 2}
  - one_of: [{op: flip, direction: horizontal}, {op: scale, range: [0.8, 1.2]}]
  - some_of: {n: 1, steps: [{op: crop, size: [320, 320]}, {op: pad, to_multiple: 64}]}
  - {op: resample_noise, region: [0.0, 0.0, 0.5, 0.5]}
"""
SIZE = (32, 64)
HAS_HF = importlib.util.find_spec("datasets") is not None


def _export(tmp: Path, dataset: str, size: tuple[int, int]) -> Path:
    from sisgen.export import export_onnx

    model = build_model("spade", dataset=dataset, ngf=2, spade_hidden=4, z_dim=0,
                        spatial_noise_dim=2, height=size[0], width=size[1],
                        num_upsampling_layers="normal")
    path, parity = export_onnx(model, tmp / f"{dataset}.onnx")
    assert parity.max_abs <= 1e-4
    return path


def _expected(src, recipe_text: str, entries: list[dict], size) -> dict[str, np.ndarray]:
    """The edited, resized label map of every written sample, rebuilt by the prepare stage."""
    path = SamplePath(src, Recipe.load(recipe_text), size, seed=7, samples_per_map=2,
                      bank=InstanceBank.from_source(src, limit=500))
    out = {}
    for e in entries:
        s = path.sample(e["index"])
        out[s.name] = s.labelmap.semantic
    return out


def _check_common_writers(out: Path, expected: dict[str, np.ndarray], vocab) -> None:
    # COCO: pycocotools loads; masks rasterize to the label PNG; the PNG equals the edit
    inst = COCO(str(out / "coco/annotations/instances_train2017.json"))
    stuff = COCO(str(out / "coco/annotations/stuff_train2017.json"))
    for img in inst.loadImgs(inst.getImgIds()):
        stem = img["file_name"].rsplit(".", 1)[0]
        label = read_label_png(out / "coco/labels/train2017" / f"{stem}.png")
        np.testing.assert_array_equal(label, expected[stem])
        painted = np.full(label.shape, 255, np.uint8)
        for coco in (stuff, inst):
            for ann in coco.loadAnns(coco.getAnnIds(imgIds=[img["id"]])):
                painted[coco.annToMask(ann).astype(bool)] = ann["category_id"] - 1
        np.testing.assert_array_equal(painted, label)
    assert len(inst.getImgIds()) == len(expected)
    # COCO panoptic: segment ids decode back to the classes
    pan = json.loads((out / "coco/annotations/panoptic_train2017.json").read_text())
    for ann in pan["annotations"]:
        rgb = read_rgb(out / "coco/annotations/panoptic_train2017" / ann["file_name"])
        rgb = rgb.astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        sem = np.full(ids.shape, 255, np.uint8)
        for seg in ann["segments_info"]:
            sem[ids == seg["id"]] = seg["category_id"] - 1
        np.testing.assert_array_equal(sem, expected[ann["file_name"][:-4]])
    # mmseg img_dir/ann_dir
    for name, sem in expected.items():
        np.testing.assert_array_equal(read_label_png(out / f"mmseg/ann_dir/train/{name}.png"), sem)
        assert (out / f"mmseg/img_dir/train/{name}.jpg").is_file()
    meta = json.loads((out / "mmseg/meta.json").read_text())
    assert meta["ignore_index"] == 255
    # YOLO segmentation: data.yaml + one txt per image with normalised polygons
    data = yaml.safe_load((out / "yolo/data.yaml").read_text())
    assert set(vocab[c].name for c in vocab.thing_ids) == set(data["names"].values())
    for name in expected:
        for line in (out / f"yolo/labels/train/{name}.txt").read_text().splitlines():
            vals = [float(v) for v in line.split()]
            assert 0 <= int(vals[0]) < len(data["names"]) and len(vals) % 2 == 1
            assert all(0.0 <= v <= 1.0 for v in vals[1:])
    # plain folder, read back by the folder source
    folder = sources.open("folder", out / "folder")
    for i in range(len(folder)):
        lm = folder.load(i)
        np.testing.assert_array_equal(lm.semantic, expected[lm.id])
    if HAS_HF:
        import datasets

        ds = datasets.load_from_disk(str(out / "hf/hf"))
        for row in ds:
            np.testing.assert_array_equal(np.asarray(row["label"]), expected[row["id"]])


WRITERS = "coco,mmseg,yolo,folder" + (",hf" if HAS_HF else "")


@pytest.mark.samples
def test_generate_cityscapes_every_edit_every_format(tmp_path, cityscapes_root):
    model = _export(tmp_path, "cityscapes", SIZE)
    (tmp_path / "recipe.yaml").write_text(EVERY_EDIT)
    out = tmp_path / "out"
    rc = main(["generate", "--model", str(model), "--source", "cityscapes",
               "--root", str(cityscapes_root), "--split", "val", "--limit", "4",
               "--recipe", str(tmp_path / "recipe.yaml"), "--seed", "7",
               "--samples-per-map", "2", "--out", str(out),
               "--writers", "cityscapes," + WRITERS, "--writer-option", "coco.panoptic=true"])
    assert rc == 0
    entries = [e for e in read_manifest(out / "manifest.jsonl") if e["status"] == "ok"]
    assert len(entries) == 8
    assert all({x["op"] for x in e["edits"]} >= {"relabel", "paste", "resample_noise"}
               for e in entries)
    src = sources.open("cityscapes", cityscapes_root, split="val")
    expected = _expected(src, EVERY_EDIT, entries, SIZE)
    back = sources.open("cityscapes", out / "cityscapes", split="train")
    assert len(back) == 8
    for i in range(len(back)):
        lm = back.load(i)
        np.testing.assert_array_equal(lm.semantic, expected[lm.id])
    _check_common_writers(out, expected, src.vocabulary)


@pytest.mark.samples
def test_generate_coco_json_every_edit_every_format(tmp_path, coco_root):
    model = _export(tmp_path, "coco_stuff", (32, 32))
    out = tmp_path / "out"
    rc = main(["generate", "--model", str(model), "--source", "coco", "--root", str(coco_root),
               "--split", "val2017", "--limit", "3", "--recipe", COCO_EDITS, "--seed", "7",
               "--samples-per-map", "2", "--out", str(out), "--writers", WRITERS,
               "--writer-option", "coco.panoptic=true"])
    assert rc == 0
    entries = [e for e in read_manifest(out / "manifest.jsonl") if e["status"] == "ok"]
    assert len(entries) == 6
    src = sources.open("coco", coco_root, split="val2017")
    _check_common_writers(out, _expected(src, COCO_EDITS, entries, (32, 32)), src.vocabulary)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.mark.samples
@pytest.mark.parametrize("resize_first", [False, True])
def test_map_cache_gives_the_same_dataset(tmp_path, cityscapes_root, resize_first):
    """``--map-cache``: a cold and a warm cache write exactly the run without a cache."""
    model = _export(tmp_path, "cityscapes", SIZE)
    args = ["generate", "--model", str(model), "--source", "cityscapes",
            "--root", str(cityscapes_root), "--split", "val", "--limit", "2",
            "--samples-per-map", "2", "--writers", "cityscapes,coco", "--seed", "3",
            *(["--resize-first"] if resize_first else [])]
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    cache = tmp_path / "cache"
    for run in ("cold", "warm"):
        assert main([*args, "--out", str(tmp_path / run), "--map-cache", str(cache)]) == 0
    assert any(cache.iterdir())
    plain = _tree(tmp_path / "plain")
    assert _tree(tmp_path / "cold") == plain
    assert _tree(tmp_path / "warm") == plain
