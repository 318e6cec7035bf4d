"""Execution backends: `cpu` (NumPy, always present) and `cuda` (CuPy, imported only when asked)."""
from __future__ import annotations

import functools
import importlib


@functools.lru_cache(maxsize=1)
def cuda_available() -> bool:
    """True when CuPy imports and sees at least one CUDA device."""
    try:
        cupy = importlib.import_module("cupy")
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - missing module, driver or device all mean "no"
        return False


def get_backend(name: str):
    """The backend module `workbench.backends.<name>`, imported only when asked."""
    from ..errors import ConfigError, UnsupportedError

    if name == "cuda" and not cuda_available():
        raise UnsupportedError("device='cuda' needs CuPy and a usable NVIDIA GPU; none was found. "
                               "Install workbench[gpu] on a GPU machine, or use device='cpu' / 'auto'")
    if name not in ("cpu", "cuda"):
        raise ConfigError(f"unknown backend {name!r}; use 'cpu' or 'cuda'")
    return importlib.import_module(f"{__name__}.{name}.backend")
