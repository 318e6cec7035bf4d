"""CuPy and the device: the one module that imports cupy; the rest of the package takes `cp` from here.

A `Device` is the state one build or one execution context owns: a non-blocking stream (CUDA graphs
cannot capture the legacy stream), a private memory pool (so captured graphs own their addresses),
library handles bound to the stream, and a workspace that only grows. `Shared` is what the contexts
of one engine share: the weights on the device and weights re-laid out for a tactic.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import os
import threading
import weakref

import cupy as cp
import numpy as np

from ...dtypes import np_dtype

# Small integer constants stay on the host: they are shapes, axes and indices that CPU kernels read
# as Python values, and keeping them there lets shape arithmetic run without device round trips.
HOST_CONST_ELEMENTS = 1024


@functools.lru_cache(maxsize=None)
def library(name: str):
    """An optional library (cudnn, nvmath), or None when it is missing or fails to load."""
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None


@functools.lru_cache(maxsize=1)
def info() -> dict:
    """Name, compute capability, memory and library versions of the current device."""
    dev = cp.cuda.Device()
    props = cp.cuda.runtime.getDeviceProperties(dev.id)
    name = props.get("name", b"")
    name = name.decode(errors="replace") if isinstance(name, bytes) else str(name)
    major, minor = int(props.get("major", 0)), int(props.get("minor", 0))
    out = {"backend": "cuda", "name": name, "compute_capability": f"{major}.{minor}", "arch": f"sm_{major}{minor}",
           "multiprocessors": int(props.get("multiProcessorCount", 0)),
           "memory_bytes": int(props.get("totalGlobalMem", 0)), "cupy": cp.__version__,
           "cuda_runtime": int(cp.cuda.runtime.runtimeGetVersion())}
    cudnn = library("cudnn")
    if cudnn is not None:
        with contextlib.suppress(Exception):
            out["cudnn"] = int(cudnn.backend_version())
    nvmath = library("nvmath")
    if nvmath is not None:
        out["nvmath"] = getattr(nvmath, "__version__", "?")
    return out


def device_key() -> str:
    """What makes timings comparable: the card, its architecture and the libraries' versions."""
    d = info()
    return f"{d['name']}|{d['arch']}|cuda{d['cuda_runtime']}|cudnn{d.get('cudnn', '-')}|cupy{d['cupy']}"


def is_device(x) -> bool:
    return isinstance(x, cp.ndarray)


# CuPy has no bfloat16 or float8 arrays: these live on the device as a wider float holding the same
# values exactly (every float8_e4m3fn value is a float16 value).
EMULATED = {"bfloat16": np.dtype(np.float32), "float8_e4m3fn": np.dtype(np.float16)}


def device_dtype(name) -> np.dtype:
    """How a stored dtype lives on the device (see EMULATED)."""
    name = np.dtype(name).name if not isinstance(name, str) else name
    return EMULATED.get(name) or np_dtype(name)


def to_host(x):
    """A NumPy array (copied off the device on the current stream when needed)."""
    if x is None:
        return None
    if is_device(x):
        return cp.asnumpy(x, stream=cp.cuda.get_current_stream())
    return np.asarray(x)


def to_device(x, dtype=None):
    """A CuPy array on the current stream (bfloat16 / float8 host data widened, see EMULATED)."""
    if x is None:
        return None
    if not is_device(x):
        x = np.asarray(x)
        if x.dtype.name in EMULATED:
            x = x.astype(EMULATED[x.dtype.name])
        x = cp.asarray(x)
    return x if dtype is None or x.dtype == dtype else x.astype(dtype)


def capturing(stream) -> bool:
    with contextlib.suppress(Exception):
        return bool(stream.is_capturing())
    return False


class Shared:
    """What every context of one engine shares: weights on the device and derived (re-laid-out) weights."""

    def __init__(self, weights: dict):
        self.lock = threading.Lock()
        self.pool = cp.cuda.MemoryPool()
        self.side = cp.cuda.Stream(non_blocking=True)  # derived weights are made here, never in a capture
        self.derived: dict = {}
        with self.allocating():
            self.weights = {name: self._upload(w) for name, w in weights.items()}
        self.side.synchronize()

    @contextlib.contextmanager
    def allocating(self):
        with self.side, cp.cuda.using_allocator(self.pool.malloc):
            yield

    def _upload(self, w):
        w = np.asarray(w)
        if w.dtype.kind in "iub" and w.size <= HOST_CONST_ELEMENTS:
            return w
        return to_device(np.ascontiguousarray(w))

    def derive(self, array, key, fn):
        """fn(array) computed once per weight (keyed by its address) on the side stream and kept.

        Small host weights (biases, kept on the host) are keyed by identity: they live as long as the engine.
        """
        where = int(array.data.ptr) if is_device(array) else ("host", id(array))
        full = (where, array.shape, array.dtype.str, array.strides, key)
        with self.lock:
            out = self.derived.get(full)
            if out is None:
                with self.allocating():
                    out = fn(array)
                self.side.synchronize()
                self.derived[full] = out
        return out

    def nbytes(self) -> int:
        arrays = [w for w in self.weights.values() if is_device(w)]
        arrays += [v for v in self.derived.values() if is_device(v)]
        return int(sum(a.nbytes for a in arrays))


class Device:
    """The device state of one build or one execution context (see the module docstring)."""

    def __init__(self, shared: Shared | None = None):
        self.stream = cp.cuda.Stream(non_blocking=True)
        self.pool = cp.cuda.MemoryPool()
        self.shared = shared
        self.memo: dict = {}
        self._cudnn_handle = None
        self._workspaces: list = []  # kept for the life of the device: captured graphs hold their addresses
        self.workspace_limit = None
        # library handles hold device memory of their own: released with the device (or at its collection)
        self._closers: list = [self.pool.free_all_blocks]  # runs last
        self._finalizer = weakref.finalize(self, _run_closers, self._closers)

    def on_close(self, fn) -> None:
        """Call fn() when the device is closed or collected (destroying a library handle, say)."""
        self._closers.append(fn)

    def close(self) -> None:
        """Release the cached objects (plans first: they were made with the handles), the library
        handles, and the pool's free memory."""
        self.memo.clear()
        self._workspaces.clear()
        self._finalizer()
        self._cudnn_handle = None

    @contextlib.contextmanager
    def active(self, pool=None, malloc=None):
        """Run on this device's stream, allocating from its pool (or `pool`, or the allocator `malloc`)."""
        with self.stream, cp.cuda.using_allocator(malloc or (pool or self.pool).malloc):
            yield

    def synchronize(self) -> None:
        self.stream.synchronize()

    def cudnn_handle(self):
        if self._cudnn_handle is None:
            cudnn = library("cudnn")
            self._cudnn_handle = handle = cudnn.create_handle()
            cudnn.set_stream(handle, self.stream.ptr)
            if hasattr(cudnn, "destroy_handle"):
                self.on_close(lambda: cudnn.destroy_handle(handle))
        return self._cudnn_handle

    def workspace(self, nbytes: int):
        """A device buffer of at least `nbytes` (one per device, grown when needed, never freed early)."""
        nbytes = max(int(nbytes), 256)
        if not self._workspaces or self._workspaces[-1].nbytes < nbytes:
            mem = self.pool.malloc(nbytes)
            self._workspaces.append(cp.ndarray((nbytes,), cp.uint8, memptr=mem))
        return self._workspaces[-1]

    def workspace_bytes(self) -> int:
        return self._workspaces[-1].nbytes if self._workspaces else 0

    def derive(self, array, key, fn, constant: bool):
        """A transformed copy of an input: cached per weight when `constant`, else recomputed."""
        if constant and self.shared is not None:
            return self.shared.derive(array, key, fn)
        return fn(array)

    def cached(self, key, make):
        """Per-device memo for objects that are costly to make (cuDNN graphs, compiled kernels)."""
        if key not in self.memo:
            self.memo[key] = make()
        return self.memo[key]


def _run_closers(closers: list) -> None:
    while closers:
        with contextlib.suppress(Exception):  # at interpreter exit the CUDA context may be gone already
            closers.pop()()


def set_cache_dir() -> None:
    """Compiled kernels land in workbench's cache unless the user chose CuPy's folder."""
    base = os.environ.get("WORKBENCH_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "workbench"))
    os.environ.setdefault("CUPY_CACHE_DIR", os.path.join(base, "kernels"))


set_cache_dir()
