"""The run folder's reports: log lines, metrics, sample grids."""

from __future__ import annotations

import json

import numpy as np
import torch

from sisgen.io import read_rgb
from sisgen.training.runlog import RunLog, sample_grid
from sisgen.vocab import get_vocabulary


def test_log_then_truncate_to_a_checkpoint(tmp_path):
    run = RunLog(tmp_path, main=True, progress=False)
    run.start(total_steps=5, step=0, budget=None)
    for step in range(1, 6):
        run.log({"step": step, "epoch": 0, "g_total": 0.5})
    run.stop()
    with open(tmp_path / "log.jsonl", "a", encoding="utf-8") as f:
        f.write('{"step": 6, "g_to')  # a line torn by a kill
    run.truncate(3)
    lines = (tmp_path / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [1, 2, 3]


def test_other_ranks_write_nothing(tmp_path):
    run = RunLog(tmp_path, main=False, tensorboard=True)
    run.start(total_steps=2, step=0, budget=None)
    run.advance(1, 0.1, {"g_total": 1.0})
    run.stop()
    run.truncate(0)
    run.close()
    assert list(tmp_path.iterdir()) == []


def test_metrics_and_sample_grid(tmp_path):
    run = RunLog(tmp_path, main=True, progress=False)
    run.log_metrics({"step": 4, "icv": 1.5, "images": 3})
    run.log_metrics({"step": 8, "icv": 1.25, "images": 3})
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [4, 8]
    vocab = get_vocabulary("toycity")
    labels = torch.tensor([[[0, 1], [8, 9]], [[3, 3], [4, 4]]])
    fake = torch.full((2, 3, 2, 2), -1.0)
    real = torch.ones(2, 3, 2, 2)
    grid = sample_grid(vocab, labels, fake, real)
    assert grid.shape == (4, 6, 3) and grid.dtype == np.uint8
    assert np.array_equal(grid[:2, :2], vocab.colorize(labels[0].numpy()))
    assert (grid[:, 2:4] == 0).all() and (grid[:, 4:] == 255).all()
    path = run.write_samples(grid, 12)
    assert path == tmp_path / "samples" / "step_0000012.png"
    assert np.array_equal(read_rgb(path), grid)
