"""Runs refuse what they cannot do well: bad folders and options, mixed shards, retries."""

from __future__ import annotations

import json
import os
import shutil

import pytest
import torch

from sisgen import sources
from sisgen.cli import main
from sisgen.engines import Generator
from sisgen.engines.torch_engine import TorchEngine
from sisgen.errors import SisgenInputError
from sisgen.generate import generate, merge
from sisgen.manifest import read_manifest
from sisgen.models import build_model

SIZE = (32, 64)


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    model = build_model("spade", dataset="toycity", ngf=2, spade_hidden=4, z_dim=4,
                        height=SIZE[0], width=SIZE[1]).eval()
    return Generator.from_model(TorchEngine(model, "cpu"), model, model_hash="t")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("m") / "model"
    build_model("spade", dataset="toycity", ngf=2, spade_hidden=4, z_dim=4, height=SIZE[0],
                width=SIZE[1]).save(d)
    return d


def _src(n=4):
    return sources.open("toycity", split="val", size=SIZE, length=n)


def _run(gen, out, **kw):
    kw = {"writers": ("folder",), "batch_size": 2, "progress": False, **kw}
    return generate(gen, kw.pop("source", _src()), out, **kw)


def test_output_path_that_is_a_file_or_read_only(gen, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SisgenInputError, match="not a folder") as e:
        _run(gen, tmp_path / "file")
    assert str(tmp_path / "file") in str(e.value)
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(SisgenInputError, match="not writable"):
            _run(gen, ro / "out")
    finally:
        ro.chmod(0o700)


def test_a_failed_check_leaves_no_folder(gen, tmp_path):
    with pytest.raises(SisgenInputError, match="vocabulary"):
        _run(gen, tmp_path / "a", recipe="edits: [{op: relabel, mapping: {nope: road}}]")
    with pytest.raises(SisgenInputError, match="unknown writer kind"):
        _run(gen, tmp_path / "b", writers=("folder", "bogus"))
    with pytest.raises(SisgenInputError, match="image_format"):
        _run(gen, tmp_path / "c", writer_options={"folder": {"image_format": "gif"}})
    assert not any(tmp_path.iterdir())


def test_cli_errors_are_one_line(model_dir, tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    base = ["generate", "--model", str(model_dir), "--source", "toycity", "--split", "val",
            "--limit", "2"]
    for extra, words in [
        (["--out", str(tmp_path / "file")], "not a folder"),
        (["--out", str(tmp_path / "o"), "--source-option", "bogus=1"], "bogus"),
        (["--out", str(tmp_path / "o"), "--vocabulary", "cityscapes"], "vocabulary"),
    ]:
        assert main(base + extra) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("sisgen: error:") and words in err[0]
    assert not (tmp_path / "o").exists()


def test_merge_refuses_inconsistent_shards(gen, tmp_path):
    out = tmp_path / "run"
    _run(gen, out, shard="0/2", seed=1)
    with pytest.raises(SisgenInputError, match="1/2 missing"):
        merge(out)
    _run(gen, out, shard="1/2", seed=2)  # another seed: another run
    with pytest.raises(SisgenInputError, match="another run"):
        merge(out)
    (out / "manifest.shard-1-of-2.jsonl").unlink()
    _run(gen, out, shard="1/2", seed=1, limit=2)  # another limit
    with pytest.raises(SisgenInputError, match="maps"):
        merge(out)
    (out / "manifest.shard-1-of-2.jsonl").unlink()
    _run(gen, out, shard="1/2", seed=1)
    with pytest.raises(SisgenInputError, match="not the run's"):
        merge(out, vocabulary="cityscapes")
    lines = (out / "manifest.shard-1-of-2.jsonl").read_text().splitlines()
    (out / "manifest.shard-1-of-2.jsonl").write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(SisgenInputError, match="incomplete"):
        merge(out)
    (out / "manifest.shard-1-of-2.jsonl").write_text("\n".join(lines) + "\n")
    merged = merge(out, vocabulary="toycity")
    assert [e["index"] for e in read_manifest(merged) if e["status"] == "ok"] == list(range(4))


def test_retry_errors_redoes_recorded_errors(gen, tmp_path):
    root = tmp_path / "maps"
    src = _src()
    from sisgen.io import write_image

    for i in range(3):
        write_image(root / "labels" / f"m{i}.png", src.load(i).semantic)
    good = (root / "labels" / "m1.png").read_bytes()
    (root / "labels" / "m1.png").write_bytes(b"not a png")
    folder = sources.open("folder", root, vocabulary="toycity")
    out = tmp_path / "out"
    report = _run(gen, out, source=folder)
    assert report.written == 2 and report.failed == 1
    (root / "labels" / "m1.png").write_bytes(good)  # fixed
    again = _run(gen, out, source=folder, resume=True)
    assert again.written == 0  # errors are done unless retried
    retried = _run(gen, out, source=folder, resume=True, retry_errors=True)
    assert retried.written == 1
    entries = [e for e in read_manifest(out / "manifest.jsonl") if e["status"] != "run"]
    assert sorted(e["index"] for e in entries) == [0, 1, 2]
    assert all(e["status"] == "ok" for e in entries)


def test_two_runs_are_byte_identical_and_follow_the_umask(gen, tmp_path):
    old = os.umask(0o022)
    try:
        for name, parallel in (("a", {}), ("b", {"write_workers": 1}),
                               ("c", {"write_threads": 3})):
            _run(gen, tmp_path / name, writers=("cityscapes", "coco"), samples_per_map=2,
                 recipe="edits: [{op: hflip, p: 0.5}]", **parallel)
    finally:
        os.umask(old)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*")
                   if p.is_file())
    for other in ("b", "c"):
        assert files == sorted(p.relative_to(tmp_path / other)
                               for p in (tmp_path / other).rglob("*") if p.is_file())
        for f in files:
            assert (tmp_path / "a" / f).read_bytes() == (tmp_path / other / f).read_bytes(), f
            assert (tmp_path / other / f).stat().st_mode & 0o777 == 0o644
    run = json.loads((tmp_path / "a" / "manifest.jsonl").read_text().splitlines()[0])
    assert run["status"] == "run" and run["total"] == 8
    shutil.rmtree(tmp_path / "b")
    shutil.rmtree(tmp_path / "c")


def test_the_bank_does_not_depend_on_the_limit(gen, tmp_path):
    recipe = "edits: [{op: paste, classes: [car], count: 1}]"
    src = _src(20)
    _run(gen, tmp_path / "a", source=src, recipe=recipe, limit=2, bank_maps=10)
    _run(gen, tmp_path / "b", source=src, recipe=recipe, limit=4, bank_maps=10)
    ok_a, ok_b = ({e["sample"]: e for e in read_manifest(tmp_path / d / "manifest.jsonl")
                   if e["status"] == "ok"} for d in ("a", "b"))
    assert len(ok_a) == 2 and len(ok_b) == 4
    assert all(ok_b[k]["edits"] == v["edits"] for k, v in ok_a.items())
    for name in ok_a:
        assert (tmp_path / "a" / "folder" / "labels" / f"{name}.png").read_bytes() == (
            tmp_path / "b" / "folder" / "labels" / f"{name}.png").read_bytes()
    record = read_manifest(tmp_path / "a" / "manifest.jsonl")[0]
    assert record["bank"]["from"] == "source" and record["bank"]["maps"] == 10
