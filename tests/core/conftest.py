"""Fixtures of the engine's tests."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """Most engine tests run many small forward passes; on a 2-core machine two intra-op
    threads fighting other processes made them up to 20x slower. Restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cnn():
    """The built-in digit CNN (eval mode), loaded once per test module."""
    from advstudio.core.models.registry import load_builtin

    return load_builtin("digits-cnn")
