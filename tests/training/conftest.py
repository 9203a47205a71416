"""Fixtures of the training tests."""

import pytest
import torch


@pytest.fixture
def one_thread():
    """Tiny convolutions: one thread is faster, and never stalls on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
