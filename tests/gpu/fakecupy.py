"""A NumPy stand-in for the part of CuPy the cuda backend uses, to test its orchestration without a GPU.

Device arrays are a NumPy subclass (so `is_device` tells them apart and NumPy calls keep them);
streams and events are host-side; CUDA-graph capture and NVRTC raise, so the build falls back to
eager runs and to the generic/host tactics — exactly the paths that must work everywhere.
Used by tests/gpu/test_fake_backend.py only; the real GPU tests never see it.
"""
from __future__ import annotations

import contextlib
import time
import types

import numpy as np

__version__ = "0.0-fake"


class ndarray(np.ndarray):  # noqa: N801 - mirrors cupy.ndarray
    def __new__(cls, shape, dtype=float, memptr=None, strides=None, order="C"):
        return np.ndarray.__new__(cls, shape, dtype, order=order)

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.__array_interface__["data"][0])

    def get(self, stream=None):
        return np.array(self)

    def set(self, arr, stream=None):
        self[...] = arr


def _dev(x):
    if isinstance(x, np.ndarray):
        return x.view(ndarray) if not isinstance(x, ndarray) else x
    if isinstance(x, np.generic):
        return np.asarray(x).view(ndarray)
    return x


def asarray(x, dtype=None):
    return np.array(x, dtype=dtype).view(ndarray)


def asnumpy(x, stream=None, **_):
    return np.array(x)


def ascontiguousarray(x, dtype=None):
    return _dev(np.ascontiguousarray(x, dtype=dtype))


def empty(shape, dtype=float):
    return np.empty(shape, dtype).view(ndarray)


def zeros(shape, dtype=float):
    return np.zeros(shape, dtype).view(ndarray)


def matmul(a, b):
    return _dev(np.matmul(a, b))


def __getattr__(name):
    value = getattr(np, name)
    if callable(value) and not isinstance(value, type):
        return lambda *a, **k: _dev(value(*a, **k))
    return value


class ElementwiseKernel:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("no NVRTC in the fake CuPy")


RawKernel = ElementwiseKernel


class _Stream:
    def __init__(self, null=False, non_blocking=False, ptds=False):
        self.ptr = id(self)

    def __enter__(self):
        _current.append(self)
        return self

    def __exit__(self, *exc):
        _current.pop()
        return False

    def synchronize(self):
        pass

    def record(self, event=None):
        event = event or _Event()
        event.record(self)
        return event

    def wait_event(self, event):
        pass

    def begin_capture(self, mode=None):
        raise RuntimeError("the fake CuPy cannot capture CUDA graphs")

    def end_capture(self):
        raise RuntimeError("not capturing")

    def is_capturing(self):
        return False


class _Event:
    def __init__(self, *a, **k):
        self.t = 0.0

    def record(self, stream=None):
        self.t = time.perf_counter()

    def synchronize(self):
        pass


class _MemoryPool:
    def malloc(self, n):
        return types.SimpleNamespace(ptr=0, size=n)

    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


class _UnownedMemory:
    def __init__(self, ptr, size, owner, device_id=-1):
        self.ptr, self.size, self.owner = ptr, size, owner


class _MemoryPointer:
    def __init__(self, mem, offset):
        self.mem, self.ptr = mem, mem.ptr + offset


_current: list = [_Stream()]


@contextlib.contextmanager
def _using_allocator(fn=None):
    yield


class _Device:
    def __init__(self, i=0):
        self.id = i


_runtime = types.SimpleNamespace(
    getDeviceProperties=lambda i: {"name": b"FakeGPU", "major": 9, "minor": 0, "multiProcessorCount": 1,
                                   "totalGlobalMem": 1 << 30},
    runtimeGetVersion=lambda: 13000, memGetInfo=lambda: (1 << 29, 1 << 30), getDeviceCount=lambda: 1)

cuda = types.SimpleNamespace(
    Stream=_Stream, Event=_Event, MemoryPool=_MemoryPool, UnownedMemory=_UnownedMemory, MemoryPointer=_MemoryPointer, using_allocator=_using_allocator, Device=_Device,
    runtime=_runtime, get_current_stream=lambda: _current[-1],
    get_elapsed_time=lambda a, b: (b.t - a.t) * 1000.0)
