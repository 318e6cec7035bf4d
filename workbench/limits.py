"""Resource limits that protect the user's process from models that would eat the machine.

Two guards use them: shape inference refuses any tensor whose static size is over the limit
(declared inputs, and outputs computed from constants), and the executor re-checks, just before
running them, the few layers whose output size depends on input VALUES only known at run time
(VALUE_SHAPED_OPS: Range(0, n) with n an input, Expand to a shape input...). Inside subgraphs (If
branches, Loop and Scan bodies) shapes change from one run to the next, so the subgraph executor
checks every layer, and Loop and Scan check the outputs they stack over their iterations.
"""
from __future__ import annotations

import os

# A single tensor may take at most this fraction of the host's physical memory by default.
TENSOR_FRACTION = 0.25
_override: int | None = None

# A Loop may run at most this many iterations (exporters write while-loops with trip count 2**63-1 and
# a condition, so the count it runs is checked, not the count it names). Set it higher if a model needs.
MAX_LOOP_ITERATIONS = 1_000_000

# Ops whose output element count is a function of the values (not only the shapes) of their
# inputs: a target shape, a count, repeats, pads, sizes or scales. Build-time checks at the
# profile's largest shapes bound every other op; these are checked again at run time, by their
# shape rules applied to the actual inputs (one source of truth for the arithmetic).
VALUE_SHAPED_OPS = frozenset({
    "ConstantOfShape", "Expand", "Tile", "Range", "Pad", "OneHot", "Resize", "Upsample",
    "CenterCropPad", "Col2Im", "MaxUnpool", "AffineGrid", "DFT", "STFT",
    "HannWindow", "HammingWindow", "BlackmanWindow", "MelWeightMatrix",
})


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


def refuse_over_limit(nbytes: int, what: str, limit: int | None = None) -> None:
    """Raise ResourceLimitError when `what` would take more than `limit` bytes (default: the tensor limit).

    >>> refuse_over_limit(n_iterations * step_bytes, "Loop 'l1' scan output 'y'")
    """
    from .errors import ResourceLimitError

    limit = default_tensor_limit() if limit is None else limit
    if nbytes > limit:
        raise ResourceLimitError(f"{what} would take {format_bytes(nbytes)}, over the limit of {format_bytes(limit)}; "
                                 f"the model is malformed or needs smaller inputs (or raise the limit with "
                                 f"workbench.limits.set_tensor_limit)")


def format_bytes(n: int) -> str:
    """A byte count for messages: '512.0 MiB', '8.0 GiB', '4.5e+06 TiB'.  >>> format_bytes(3 << 30)"""
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            value = n / size
            return f"{value:.1f} {unit}" if value < 1e6 else f"{value:.1e} {unit}"
    return f"{n} bytes"
