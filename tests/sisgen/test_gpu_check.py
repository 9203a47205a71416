"""benchmarks/gpu_check.py: its CPU paths (no CUDA: a quick JSON; --dry-run: every step, tiny).

The numbers are not checked (benchmarks are never timed assertions); the steps are.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


def _run(*args: str, timeout: float = 300) -> dict:
    done = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without CUDA")
def test_without_cuda_it_says_so_at_once():
    out = _run(timeout=60)
    assert out["cuda"] is False and "no CUDA" in out["skipped"] and "configs" not in out


def test_dry_run_exercises_every_step(tmp_path):
    out = _run("--dry-run", "--out", str(tmp_path / "r.json"))
    assert json.loads((tmp_path / "r.json").read_text()) == out
    assert out["dry_run"] and out["model"]["gflop_per_image"] > 0
    by_name = {c["name"]: c for c in out["configs"]}
    base = by_name["fp32_b1_tf32off"]
    assert base["max_abs_uint8"] == 0 and base["engine_images_per_s"] > 0
    assert base["run_images_per_s"] > 0 and "run_tflops" in base
    assert "max_abs_uint8" in by_name["bf16_cl_b2"]
    if not torch.cuda.is_available():
        assert "skipped" in by_name["fp16_cl_graphs_b2"]
    assert out["best"]["name"] in by_name
    for engine in ("model", "null"):
        e2e = out["end_to_end"][engine]
        assert e2e["report"]["written"] == 4 and e2e["images_per_s"] > 0, e2e
        assert e2e["writers"] == "cityscapes,coco"
