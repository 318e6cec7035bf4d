"""Resource limits that protect the user's process from models that would eat the machine."""
from __future__ import annotations

import os

# A single tensor may take at most this fraction of the host's physical memory by default.
TENSOR_FRACTION = 0.25
_override: int | None = None


def host_memory_bytes() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 << 30


def default_tensor_limit() -> int:
    """Largest tensor a model may declare or create, in bytes: a quarter of host memory unless set."""
    return _override if _override is not None else int(host_memory_bytes() * TENSOR_FRACTION)


def set_tensor_limit(nbytes: int | None) -> None:
    """Set (or with None, reset) the largest tensor allowed, in bytes.  >>> set_tensor_limit(8 << 30)"""
    global _override
    _override = None if nbytes is None else int(nbytes)
