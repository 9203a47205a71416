"""Generation under a plan and with the loss filter; the curate CLI end to end."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pycocotools.coco import COCO

from sisgen import sources
from sisgen.curation import Plan, compute_reference_stats
from sisgen.engines import Generator
from sisgen.engines.torch_engine import TorchEngine
from sisgen.errors import SisgenInputError
from sisgen.filtering import QualityFilter
from sisgen.generate import generate, merge, read_manifest, sample_seed
from sisgen.io import read_label_png
from sisgen.models import build_model
from sisgen.segmenter import Segmenter

SIZE = (32, 64)
COUNTS = [2, 0, 1, 3, 1, 2]
FOLDER_PNG = {"folder": {"image_format": "png"}}


def _model():
    torch.manual_seed(0)
    return build_model("spade", dataset="toycity", ngf=2, spade_hidden=4, z_dim=4,
                       height=SIZE[0], width=SIZE[1]).eval()


@pytest.fixture(scope="module")
def gen():
    model = _model()
    return Generator.from_model(TorchEngine(model, "cpu"), model, model_hash="t")


@pytest.fixture(scope="module")
def city():
    return sources.open("toycity", split="val", size=SIZE, length=len(COUNTS))


@pytest.fixture()
def plan_file(city, tmp_path):
    path = tmp_path / "plan.json"
    Plan.from_counts(city, COUNTS, "hardness").save(path)
    return path


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith(("manifest", "parts_", "."))}


def _samples(root: Path, name: str = "manifest.jsonl") -> list[dict]:
    return [e for e in read_manifest(root / name) if e["status"] != "run"]


def test_generate_follows_a_plan(city, gen, plan_file, tmp_path):
    out = tmp_path / "out"
    report = generate(gen, city, out, writers=("folder",), plan=plan_file, seed=4,
                      batch_size=3, progress=False, writer_options=FOLDER_PNG)
    assert report.written == sum(COUNTS)
    run, *lines = read_manifest(out / "manifest.jsonl")
    assert run["samples_per_map"] is None and run["total"] == 9 and run["maps"] == 6
    assert run["plan"]["sha256"] == hashlib.sha256(plan_file.read_bytes()).hexdigest()
    assert run["plan"]["mode"] == "hardness" and run["plan_file"] == str(plan_file)
    # indices run through the maps' counts in source order; map 1 (count 0) is skipped
    assert [e["index"] for e in lines] == list(range(9))
    assert [e["source_index"] for e in lines] == [0, 0, 2, 3, 3, 3, 4, 5, 5]
    keys = city.keys()
    assert [e["sample"] for e in lines][:3] == [f"{keys[0]}_s0", f"{keys[0]}_s1",
                                                f"{keys[2]}_s0"]
    assert [e["seed"] for e in lines] == [sample_seed(4, i) for i in range(9)]
    # limit keeps the plan's first maps
    limited = generate(gen, city, tmp_path / "lim", writers=("folder",), plan=plan_file,
                       seed=4, batch_size=3, limit=3, progress=False, writer_options=FOLDER_PNG)
    assert limited.written == 3
    ref = _tree(out / "folder")
    for name, data in _tree(tmp_path / "lim" / "folder").items():
        assert ref[name] == data


def test_plan_runs_resume_and_shard_bit_exactly(city, gen, plan_file, tmp_path):
    kw = {"writers": ("folder", "coco"), "plan": plan_file, "seed": 2, "batch_size": 2,
          "progress": False, "writer_options": FOLDER_PNG}
    generate(gen, city, tmp_path / "ref", **kw)
    reference = _tree(tmp_path / "ref")
    entries = _samples(tmp_path / "ref")

    # an interrupted run: the manifest lost its last lines; resume finishes it identically
    cut = tmp_path / "cut"
    generate(gen, city, cut, **kw)
    lines = (cut / "manifest.jsonl").read_text().splitlines(keepends=True)
    (cut / "manifest.jsonl").write_text("".join(lines[:4]))
    generate(gen, city, cut, resume=True, **kw)
    assert _tree(cut) == reference and _samples(cut) == entries

    # shards of the plan, merged, equal the single run (the plan read from another path)
    copy = tmp_path / "copy.json"
    copy.write_bytes(plan_file.read_bytes())
    sh = tmp_path / "sharded"
    generate(gen, city, sh, shard="0/2", **kw)
    generate(gen, city, sh, shard="1/2", **{**kw, "plan": copy})
    merge(sh, vocabulary="toycity")
    assert _tree(sh) == reference
    assert _samples(sh) == entries
    # resuming with another plan is refused
    other = tmp_path / "other.json"
    Plan.from_counts(city, [1] * 6, "balance").save(other)
    with pytest.raises(SisgenInputError, match="other settings.*plan"):
        generate(gen, city, tmp_path / "ref", resume=True, **{**kw, "plan": other})


def test_plan_for_another_source_is_refused(gen, plan_file, tmp_path):
    train = sources.open("toycity", split="train", size=SIZE, length=6)
    with pytest.raises(SisgenInputError, match=r"plan\.json.*split 'val', not 'train'"):
        generate(gen, train, tmp_path / "x", plan=plan_file, progress=False)
    assert not (tmp_path / "x").exists()
    val = sources.open("toycity", split="val", size=SIZE, length=6)
    with pytest.raises(SisgenInputError, match="samples_per_map or a plan"):
        generate(gen, val, tmp_path / "y", plan=plan_file, samples_per_map=2, progress=False)


def toycity_segmenter() -> Segmenter:
    torch.manual_seed(3)
    return Segmenter(torch.nn.Conv2d(3, 10, 1).eval(), vocabulary="toycity")


def test_loss_filter_writes_ignore_pixels_and_records_them(city, gen, tmp_path):
    seg = toycity_segmenter()
    stats = compute_reference_stats(seg, city)
    qf = QualityFilter(seg, mode="loss", reference=stats, factor=1.0, min_miou=0.0)
    out = tmp_path / "out"
    report = generate(gen, city, out, writers=("cityscapes", "coco", "folder"), seed=1,
                      quality_filter=qf, progress=False, batch_size=4,
                      writer_options={k: {"image_format": "png"}
                                      for k in ("cityscapes", "coco", "folder")})
    assert report.written == len(city)
    lines = _samples(out)
    assert any(e["quality"]["ignored_pixels"] for e in lines)
    coco = COCO(str(out / "coco" / "annotations" / "instances_train2017.json"))
    assert len(coco.getImgIds()) == len(city)
    for e in lines:
        q = e["quality"]
        assert set(q["class_ignored"]) <= set(city.vocabulary.names)
        for kind in ("cityscapes", "coco", "folder"):
            label = read_label_png(out / kind / e["outputs"][kind]["label"])
            assert int((label == 255).sum()) == q["ignored_pixels"], kind
        labelled = SIZE[0] * SIZE[1]
        assert q["ignored_fraction"] == pytest.approx(q["ignored_pixels"] / labelled, abs=1e-5)
    # a segmenter of another vocabulary is refused before anything is written
    other = QualityFilter(Segmenter(torch.nn.Conv2d(3, 3, 1), vocabulary="cityscapes"))
    with pytest.raises(SisgenInputError, match="do not match the toycity source"):
        generate(gen, city, tmp_path / "z", quality_filter=other, progress=False)
    assert not (tmp_path / "z").exists()


def test_curate_cli_end_to_end(tmp_path, capsys):
    from sisgen.cli import main
    from sisgen.vocab import get_vocabulary

    model_dir = tmp_path / "model"
    _model().save(model_dir)
    seg_path = tmp_path / "seg.pt"
    torch.jit.script(toycity_segmenter()._module).save(str(seg_path))
    voc = get_vocabulary("toycity")
    seg_path.with_name("seg.pt.json").write_text(json.dumps({
        "format": "sisgen-segmenter", "version": 1, "vocabulary": voc.to_dict(),
        "class_ids": voc.ids, "input_range": [0, 1], "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25], "size": list(SIZE)}))
    src = ["--source", "toycity", "--split", "val", "--limit", "6"]
    stats = tmp_path / "stats.json"
    assert main(["curate", "stats", "--segmenter", str(seg_path), *src,
                 "--out", str(stats)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["images"] == 6 and set(summary["class_loss"]) == set(voc.names)
    plan = tmp_path / "plan.json"
    assert main(["curate", "plan", "--mode", "hardness+balance", "--segmenter", str(seg_path),
                 "--stats", str(stats), "--max-samples", "3", *src, "--out", str(plan)]) == 0
    summary = json.loads(capsys.readouterr().out)
    loaded = Plan.load(plan)
    assert loaded.mode == "hardness+balance" and summary["total"] == loaded.total
    assert loaded.maps == 6 and max(loaded.counts()) <= 3
    synthetic = tmp_path / "synthetic.json"
    assert main(["curate", "plan", "--mode", "hardness", "--segmenter", str(seg_path),
                 "--model", str(model_dir), "--seed", "3", *src, "--out", str(synthetic)]) == 0
    assert Plan.load(synthetic).report["images"] == "synthetic"
    capsys.readouterr()
    out = tmp_path / "out"
    assert main(["generate", "--model", str(model_dir), *src, "--out", str(out),
                 "--writers", "folder", "--plan", str(plan), "--segmenter", str(seg_path),
                 "--filter-mode", "loss", "--reference-stats", str(stats),
                 "--loss-factor", "1.25", "--max-ignored", "0.9"]) == 0
    run = read_manifest(out / "manifest.jsonl")[0]
    assert run["plan"]["sha256"] == loaded.digest()
    lines = _samples(out)
    assert len(lines) == loaded.total
    assert all("ignored_fraction" in e["quality"] for e in lines)
    # bad input: a plan and statistics for another source / vocabulary name their files
    capsys.readouterr()
    assert main(["generate", "--model", str(model_dir), "--source", "toycity", "--split",
                 "train", "--out", str(tmp_path / "o2"), "--plan", str(plan)]) == 2
    assert "plan.json" in capsys.readouterr().err
    assert main(["generate", "--model", str(model_dir), *src, "--out", str(tmp_path / "o3"),
                 "--segmenter", str(seg_path), "--filter-mode", "loss"]) == 2
    assert "--reference-stats" in capsys.readouterr().err
    data = json.loads(stats.read_text())
    data["vocabulary"]["names"][0] = "heaven"
    stats.write_text(json.dumps(data))
    assert main(["generate", "--model", str(model_dir), *src, "--out", str(tmp_path / "o4"),
                 "--segmenter", str(seg_path), "--filter-mode", "loss",
                 "--reference-stats", str(stats)]) == 2
    assert "stats.json" in capsys.readouterr().err
    assert np.isfinite(summary["total"])
