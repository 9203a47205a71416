"""Shared fixtures: the real sample data (skipped when absent) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("SISGEN_SAMPLES", REPO.parent / "shared" / "samples"))

torch.set_num_threads(min(2, torch.get_num_threads()))


@pytest.fixture(scope="session")
def samples_dir() -> Path:
    """``../shared/samples``; tests using it skip when the folder is absent."""
    if not SAMPLES.is_dir():
        pytest.skip(f"real sample data not found at {SAMPLES}")
    return SAMPLES


@pytest.fixture(scope="session")
def cityscapes_root(samples_dir: Path) -> Path:
    root = samples_dir / "cityscapes"
    if not root.is_dir():
        pytest.skip("no Cityscapes samples")
    return root


@pytest.fixture(scope="session")
def coco_root(samples_dir: Path) -> Path:
    root = samples_dir / "coco_stuff"
    if not root.is_dir():
        pytest.skip("no COCO-Stuff samples")
    return root
