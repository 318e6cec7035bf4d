"""GPU tests: marked `gpu`, skipped where CuPy sees no CUDA device."""
from __future__ import annotations

import pytest

from workbench.backends import cuda_available


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with CuPy")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)
