"""Shared fixtures: the real sample data (skipped when absent) and small helpers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLES = Path(os.environ.get("SISGEN_SAMPLES", REPO.parent / "shared" / "samples"))

torch.set_num_threads(min(2, torch.get_num_threads()))


def _unconnected_parameters(module: torch.nn.Module, loss: torch.Tensor) -> list[str]:
    """Names of parameters that are frozen or that the autograd graph of ``loss`` misses.

    Structural, not numerical: ``allow_unused`` gives ``None`` exactly for a parameter the
    loss does not depend on (unused, detached), whatever its gradient's value. A true
    gradient of zero (a bias in front of a normalisation, which rounds to 0.0 on some CPUs
    and to 1e-11 on others) is still a connection. Non-finite gradients are reported too.
    """
    named = list(module.named_parameters())
    trainable = [(n, p) for n, p in named if p.requires_grad]
    grads = torch.autograd.grad(loss, [p for _, p in trainable], allow_unused=True)
    frozen = [n for n, p in named if not p.requires_grad]
    return frozen + [n for (n, _), g in zip(trainable, grads, strict=True)
                     if g is None or not torch.isfinite(g).all()]


@pytest.fixture(scope="session")
def unconnected():
    """``unconnected(module, loss) -> [names]``: parameters ``loss`` cannot train."""
    return _unconnected_parameters


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
