"""GPU helpers for the tools, guarded: each works when CuPy / PyTorch CUDA is present and is a no-op
(or reports "not measured") when it is not. `lib` names the library a runner computes with:
"cupy", "torch" or None (host only).
"""
from __future__ import annotations

import contextlib
import importlib

import numpy as np


def _module(lib: str | None):
    return importlib.import_module(lib) if lib else None


def synchronize(lib: str | None) -> None:
    """Wait until the device has finished all queued work (nothing to do on the host)."""
    if lib == "cupy":
        _module("cupy").cuda.Device().synchronize()
    elif lib == "torch":
        _module("torch").cuda.synchronize()


class EventTimer:
    """Device time between start() and stop(), from CUDA events; elapsed_ms() is None on the host."""

    def __init__(self, lib: str | None):
        self.lib = lib
        self._start = self._end = None

    def _event(self):
        if self.lib == "cupy":
            return _module("cupy").cuda.Event()
        if self.lib == "torch":
            return _module("torch").cuda.Event(enable_timing=True)
        return None

    def start(self) -> None:
        self._start, self._end = self._event(), self._event()
        if self._start is not None:
            self._start.record()

    def stop(self) -> None:
        if self._end is not None:
            self._end.record()

    def elapsed_ms(self):
        """Milliseconds between the events (call after synchronize), or None without a device."""
        if self._start is None:
            return None
        if self.lib == "cupy":
            return float(_module("cupy").cuda.get_elapsed_time(self._start, self._end))
        return float(self._start.elapsed_time(self._end))


def stream_scope(lib: str | None):
    """A context manager that makes a fresh CUDA stream current (one per benchmark stream)."""
    if lib == "cupy":
        return _module("cupy").cuda.Stream(non_blocking=True)
    if lib == "torch":
        torch = _module("torch")
        return torch.cuda.stream(torch.cuda.Stream())
    return contextlib.nullcontext()


def to_host(value) -> np.ndarray:
    """A NumPy array from a NumPy, CuPy or torch array (device arrays are copied to the host)."""
    if isinstance(value, np.ndarray):
        return value
    if hasattr(value, "get") and hasattr(value, "__cuda_array_interface__"):
        return value.get()
    if type(value).__module__.startswith("torch"):
        t = value.detach().cpu()
        if str(t.dtype) == "torch.bfloat16":  # NumPy has no bfloat16: hand back ml_dtypes' one
            import ml_dtypes

            return t.view(_module("torch").int16).numpy().view(ml_dtypes.bfloat16)
        return t.numpy()
    return np.asarray(value)


def reset_peak_memory(lib: str | None) -> None:
    if lib == "torch":
        _module("torch").cuda.reset_peak_memory_stats()


def peak_memory(lib: str | None):
    """Device memory the library holds at its peak (bytes), or None on the host."""
    if lib == "cupy":
        return int(_module("cupy").get_default_memory_pool().total_bytes())
    if lib == "torch":
        return int(_module("torch").cuda.max_memory_allocated())
    return None
