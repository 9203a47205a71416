"""Fixtures shared by the export tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch


def _settle(model: torch.nn.Module) -> torch.nn.Module:
    """Run two train-mode passes so BN statistics and spectral-norm vectors leave their init.

    Parity at initialisation can hide export bugs in those buffers; returns the model in
    eval mode.
    """
    model.train()
    with torch.no_grad():
        for s in range(2):
            model(*model.example_inputs(2, seed=s))
    return model.eval()


@pytest.fixture(scope="session")
def settle() -> Callable[[torch.nn.Module], torch.nn.Module]:
    """The :func:`_settle` helper, as a fixture."""
    return _settle
