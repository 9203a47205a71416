"""benchmarks/downstream.py end to end on a few ToyCity maps (every stage, tiny budgets).

The numbers are not checked (a 2-step segmenter measures nothing); the protocol is: every
arm and target is reported, the stages are kept, and a second run reuses them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "downstream.py"
TINY = ("--real", "8", "--extra", "8", "--test", "8", "--gen-steps", "2", "--steps", "2",
        "--seeds", "2", "--jobs", "1", "--samples-per-map", "1", "--max-samples", "2",
        "--batch", "4", "--threads", "1", "--gen-seg", "1",
        "--gen-override", "log_every=1")


def _run(out: Path, *extra: str) -> tuple[dict, str]:
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(out), *TINY, *extra],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout), done.stderr


def test_every_arm_is_scored_and_a_second_run_reuses_the_stages(tmp_path):
    out = tmp_path / "ds"
    # --until: the generator stage alone (as on a GPU machine), then the rest reuses it
    stopped, _ = _run(out, "--until", "generator")
    assert stopped["stopped_after"] == "generator"
    assert set(stopped["stages"]) == {"reference", "generator"}
    model = out / "generator" / "model.onnx"
    trained_at = model.stat().st_mtime_ns
    assert not (out / "synthetic").exists() and not (out / "arms").exists()
    stopped, _ = _run(out, "--until", "synthetic_sets")
    assert stopped["stopped_after"] == "synthetic_sets"
    assert len(list((out / "synthetic").glob("*/done"))) == 6 and not (out / "arms").exists()
    result, log = _run(out)
    assert model.stat().st_mtime_ns == trained_at
    assert json.loads((out / "result.json").read_text()) == result
    assert (out / "downstream.png").stat().st_size > 0
    # the generator trained under the reference segmenter's semantic consistency term
    assert (out / "reference" / "segmenter.pt").is_file()
    gen_log = (out / "generator" / "train" / "log.jsonl").read_text().splitlines()
    assert gen_log and all("g_seg" in json.loads(x) for x in gen_log)
    arms = {"R", "R+S_raw", "R+S_filtered", "R+S_curated", "R+S_transfer", "S_only",
            "S_only_adabn"}
    assert set(result["miou"]["same_masks"]) == arms
    assert set(result["miou"]["extra_layouts"]) == arms | {"R+oracle"}
    for scenario in result["miou"].values():
        for arm in scenario.values():
            assert len(arm["runs"]) == 2 and all(0 <= v <= 100 for v in arm["runs"])
    # the mixed arms share R's seeds: the gains are paired differences
    r = result["miou"]["extra_layouts"]["R"]["runs"]
    oracle = result["miou"]["extra_layouts"]["R+oracle"]["runs"]
    assert abs(result["gain_oracle_extra"] - (sum(oracle) - sum(r)) / 2) < 0.02
    assert len(result["targets"]) == 6 and all(isinstance(v, bool)
                                               for v in result["targets"].values())
    look = result["appearance"]
    assert look["maps"] == 8 and look["seed_to_seed"] >= 0 and look["std_photo"] > 0
    assert "28 segmenter runs to do (0 cached)" in log
    names = {p.name for p in (out / "arms").iterdir()}
    assert "R+extra_layouts_raw_steps2_sn_seed0.json" in names  # mixed: separate norms
    assert "extra_layouts_curated+adabn_steps2_seed1.json" in names
    transfer = json.loads((out / "transfer.json").read_text())
    assert set(transfer["classes"]) >= {"road", "car"}
    assert isinstance(result["transfer_ignored"], list)
    again, log = _run(out)
    assert "0 segmenter runs to do (28 cached)" in log
    assert again["miou"] == result["miou"] and again["appearance"] == result["appearance"]
