"""Resource limits that protect the user's process from models that would eat the machine."""
from __future__ import annotations

import os

# A single tensor may take at most this fraction of the host's physical memory by default.
TENSOR_FRACTION = 0.25


def host_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def default_tensor_limit() -> int:
    """Largest tensor a build or a run may create, in bytes: a quarter of host memory."""
    return int(host_memory_bytes() * TENSOR_FRACTION)
