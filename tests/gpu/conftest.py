"""GPU tests: marked `gpu`, skipped where CuPy sees no CUDA device."""
from __future__ import annotations

import os

import pytest

from workbench.backends import cuda_available


def pytest_collection_modifyitems(config, items):
    if cuda_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU with CuPy")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _release_device_memory(request):
    """After each test: collect the cycles kernels and plans form with their devices, and hand CuPy's
    cached blocks back, so that ~400 tests do not add up to a full GPU."""
    yield
    if not cuda_available():
        return
    import gc

    import cupy as cp

    gc.collect()
    cp.get_default_memory_pool().free_all_blocks()
    log = os.environ.get("WORKBENCH_GPU_MEMLOG")
    if log:  # where device memory goes across a session: free bytes after each test
        free, total = cp.cuda.runtime.memGetInfo()
        with open(log, "a") as f:
            f.write(f"{(total - free) >> 20} MiB used after {request.node.nodeid}\n")
