"""Checkpoint files and RNG state (the trainer's exact resume rests on them)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from sisgen.errors import SisgenInputError
from sisgen.training.checkpoint import (
    atomic_torch_save,
    read_checkpoint,
    rng_state,
    set_rng_state,
)


def _draws(gen: torch.Generator) -> tuple:
    return (torch.rand(3).tolist(), torch.rand(2, generator=gen).tolist(), random.random(),
            np.random.rand(2).tolist())


def test_rng_state_round_trip_through_a_file(tmp_path):
    gen = torch.Generator().manual_seed(7)
    _draws(gen)
    path = tmp_path / "ck.pt"
    atomic_torch_save({"rng": [rng_state(gen, torch.device("cpu"))]}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left
    expected = _draws(gen)
    _draws(gen)  # move every stream on
    st = read_checkpoint(path, torch.device("cpu"), world_size=1)
    set_rng_state(st["rng"][0], gen, torch.device("cpu"))
    assert _draws(gen) == expected


def test_read_checkpoint_errors_name_the_file(tmp_path):
    torn = tmp_path / "torn.pt"
    torn.write_bytes(b"not a checkpoint")
    with pytest.raises(SisgenInputError, match="cannot read the training checkpoint") as e:
        read_checkpoint(torn, torch.device("cpu"), 1)
    assert "torn.pt" in str(e.value)
    two = tmp_path / "two.pt"
    gen = torch.Generator()
    atomic_torch_save({"rng": [rng_state(gen, torch.device("cpu"))] * 2}, two)
    with pytest.raises(SisgenInputError, match="written by 2 ranks, this run has 1"):
        read_checkpoint(two, torch.device("cpu"), 1)
