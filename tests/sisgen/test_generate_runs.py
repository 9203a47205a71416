"""Runs that survive: SIGKILL + resume, shards + merge, torchrun rank discovery."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sisgen import sources
from sisgen.errors import SisgenInputError
from sisgen.generate import generate, merge, read_manifest, resolve_shard
from sisgen.models import build_model

RECIPE = """
edits:
  - {op: remove_instances, classes: [person], fraction: 0.5}
  - {op: hflip, p: 0.5}
"""
SIZE = (32, 64)
N_MAPS = 24


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    from sisgen.export import export_onnx

    d = tmp_path_factory.mktemp("model")
    model = build_model("spade", dataset="toycity", ngf=2, spade_hidden=4, z_dim=4,
                        height=SIZE[0], width=SIZE[1])
    path, _ = export_onnx(model, d / "m.onnx", check=False)
    return path


def _tree(root: Path) -> dict[str, bytes]:
    """Every dataset file under root (not the manifests, not writer part files)."""
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and not p.name.startswith(("manifest", "parts_", ".")):
            out[p.relative_to(root).as_posix()] = p.read_bytes()
    return out


def _all_files(root: Path) -> dict[str, bytes]:
    """Every file under root, manifests and part files included."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _entries(root: Path, name: str = "manifest.jsonl") -> list[str]:
    return sorted(json.dumps(e, sort_keys=True) for e in read_manifest(root / name))


def _run_reference(onnx_model, out: Path, **kw) -> None:
    import sisgen

    src = sources.open("toycity", split="val", size=SIZE, length=N_MAPS)
    generate(sisgen.load(onnx_model), src, out, recipe=RECIPE, seed=5, samples_per_map=2,
             batch_size=4, progress=False, **kw)


def test_sigkill_and_resume_equals_uninterrupted_run(tmp_path, onnx_model):
    _run_reference(onnx_model, tmp_path / "ref")
    out = tmp_path / "killed"
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    cmd = [sys.executable, "-m", "sisgen.cli", "generate", "--model", str(onnx_model),
           "--source", "toycity", "--split", "val", "--limit", str(N_MAPS), "--out", str(out),
           "--recipe", str(tmp_path / "recipe.yaml"), "--seed", "5", "--samples-per-map", "2",
           "--batch-size", "4", "--resume"]
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    kills = 0
    for threshold in (6, 18, 30):  # kill once the manifest has grown past each threshold
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while time.time() < deadline and proc.poll() is None:
            if len(read_manifest(out / "manifest.jsonl")) >= threshold:
                break
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    assert kills >= 3, "the run finished before it could be killed three times"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    entries = [e for e in read_manifest(out / "manifest.jsonl") if e["status"] != "run"]
    assert [e["index"] for e in entries] == list(range(2 * N_MAPS))  # no loss, no dupes
    # every file byte for byte (manifest and COCO part file included), no temp file left
    assert _all_files(out) == _all_files(tmp_path / "ref")


def test_existing_manifest_without_resume_is_refused(tmp_path, onnx_model):
    _run_reference(onnx_model, tmp_path / "a", limit=2)
    with pytest.raises(SisgenInputError, match="resume"):
        _run_reference(onnx_model, tmp_path / "a", limit=2)
    _run_reference(onnx_model, tmp_path / "a", limit=3, resume=True)  # extends the run
    lines = read_manifest(tmp_path / "a" / "manifest.jsonl")
    assert [e["maps"] for e in lines if e["status"] == "run"] == [2, 3]  # a new record
    assert [e["index"] for e in lines if e["status"] != "run"] == list(range(6))
    with pytest.raises(SisgenInputError, match="seed: 5 -> 6"):
        generate_again = dict(limit=3, resume=True)
        import sisgen

        src = sources.open("toycity", split="val", size=SIZE, length=N_MAPS)
        generate(sisgen.load(onnx_model), src, tmp_path / "a", recipe=RECIPE, seed=6,
                 samples_per_map=2, batch_size=4, progress=False, **generate_again)


def test_two_shards_merge_to_the_unsharded_run(tmp_path, onnx_model):
    _run_reference(onnx_model, tmp_path / "ref")
    out = tmp_path / "sharded"
    for k in range(2):
        _run_reference(onnx_model, out, shard=f"{k}/2")
    merge(out, vocabulary="toycity")
    assert _tree(out) == _tree(tmp_path / "ref")
    merged = (out / "manifest.jsonl").read_bytes()
    assert merged == (tmp_path / "ref" / "manifest.jsonl").read_bytes()  # byte for byte


def test_workers_do_not_change_a_single_byte(tmp_path, onnx_model):
    _run_reference(onnx_model, tmp_path / "a", limit=8, workers=0, write_workers=0)
    _run_reference(onnx_model, tmp_path / "b", limit=8, workers=2, write_workers=2)
    assert _all_files(tmp_path / "a") == _all_files(tmp_path / "b")


def test_shard_resolution(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert resolve_shard(None) is None
    assert resolve_shard("1/4") == (1, 4)
    assert resolve_shard("0/1") is None
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    assert resolve_shard(None) == (1, 2)
    for bad in ("4/4", "x", "1/0"):
        with pytest.raises(SisgenInputError):
            resolve_shard(bad)


def test_torchrun_two_ranks_equal_the_unsharded_run(tmp_path, onnx_model):
    _run_reference(onnx_model, tmp_path / "ref", limit=6)
    out = tmp_path / "ranks"
    (tmp_path / "recipe.yaml").write_text(RECIPE)
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "sisgen.cli",
           "generate", "--model", str(onnx_model), "--source", "toycity", "--split", "val",
           "--limit", "6", "--out", str(out), "--recipe", str(tmp_path / "recipe.yaml"),
           "--seed", "5", "--samples-per-map", "2", "--batch-size", "4"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(p.name for p in out.glob("manifest.shard-*")) == [
        "manifest.shard-0-of-2.jsonl", "manifest.shard-1-of-2.jsonl"]
    assert main_merge(out) == 0
    assert _tree(out) == _tree(tmp_path / "ref")
    assert _entries(out) == _entries(tmp_path / "ref")


def main_merge(out: Path) -> int:
    from sisgen.cli import main

    return main(["merge", "--out", str(out), "--vocabulary", "toycity"])
