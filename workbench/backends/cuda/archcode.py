"""Kernels compiled for one architecture's own instructions (sm_90a: wgmma), which CuPy's RawKernel
cannot target: it passes -arch=sm_XY from the device's compute capability, and the "a" targets are
not forward compatible, so CuPy never picks them. NVRTC compiles them to a cubin here, kept in the
same folder as CuPy's kernel cache (CUPY_CACHE_DIR) under a key of the source, the target and the
compiler's version.

    >>> k = ArchKernel(code, "wb_imma_...", "sm_90a")
    >>> k((blocks,), (256,), (x, w, y, np.int32(m)), shared_mem=bytes_)
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile

from .device import cp

OPTIONS = ("-ftz=true", "-std=c++17")  # as CuPy compiles its RawKernels, so the numerics match theirs


class CompileError(RuntimeError):
    """NVRTC rejected the source; the message holds its log."""


def _nvrtc():
    from cupy_backends.cuda.libs import nvrtc  # noqa: PLC0415 - only where a GPU build needs it
    return nvrtc


def _cache_path(code: str, arch: str) -> str:
    version = ".".join(map(str, _nvrtc().getVersion()))
    key = hashlib.sha1("\0".join((code, arch, version, *OPTIONS)).encode()).hexdigest()
    folder = os.environ.get("CUPY_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cupy", "kernel_cache"))
    return os.path.join(folder, f"wb-{arch}-{key}.cubin")


def _compile(code: str, name: str, arch: str) -> bytes:
    nvrtc = _nvrtc()
    prog = nvrtc.createProgram(code, name + ".cu", (), ())
    try:
        nvrtc.compileProgram(prog, (f"--gpu-architecture={arch}", *OPTIONS))
        return nvrtc.getCUBIN(prog)
    except nvrtc.NVRTCError as e:
        raise CompileError(f"NVRTC could not compile {name} for {arch}: {e}\n{nvrtc.getProgramLog(prog)}") from e
    finally:
        nvrtc.destroyProgram(prog)


def cubin(code: str, name: str, arch: str) -> bytes:
    """The compiled cubin, from the disk cache when it holds one (written whole or not at all; a cache
    folder that cannot be written costs a compile each process, nothing else)."""
    path = _cache_path(code, arch)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        pass
    binary = _compile(code, name, arch)
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(binary)
        os.replace(tmp, path)
    return binary


class ArchKernel:
    """One `extern "C"` kernel of `code` compiled for `arch` (at construction, so a compile error shows
    where the kernel is made), used like cupy.RawKernel: loaded into each device's context on first use
    there, `attributes` and `max_dynamic_shared_size_bytes` as RawKernel has them."""

    _ATTRIBUTES = ("num_regs", "local_size_bytes", "shared_size_bytes", "max_threads_per_block")

    def __init__(self, code: str, name: str, arch: str):
        self.name, self._cubin = name, cubin(code, name, arch)
        self._functions: dict = {}   # device id -> (module, function): a module lives in one context
        self._max_shared = None
        self._resident: dict = {}  # (device id, threads, shared bytes) -> resident_blocks()

    def _function(self):
        device = cp.cuda.Device().id
        if device not in self._functions:
            module = cp.cuda.function.Module()
            module.load(self._cubin)
            self._functions[device] = (module, module.get_function(self.name))
            if self._max_shared is not None:
                self._set_max_shared(self._functions[device][1])
        return self._functions[device][1]

    def _set_max_shared(self, function) -> None:
        driver = cp.cuda.driver
        driver.funcSetAttribute(function.ptr, driver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                                self._max_shared)

    @property
    def attributes(self) -> dict:
        driver, ptr = cp.cuda.driver, self._function().ptr
        return {a: driver.funcGetAttribute(getattr(driver, f"CU_FUNC_ATTRIBUTE_{a.upper()}"), ptr)
                for a in self._ATTRIBUTES}

    @property
    def max_dynamic_shared_size_bytes(self):
        return self._max_shared

    @max_dynamic_shared_size_bytes.setter
    def max_dynamic_shared_size_bytes(self, nbytes: int) -> None:
        """Opt in to more than 48 KB of dynamic shared memory a block (on every device it loads on)."""
        self._max_shared = nbytes
        for _, function in self._functions.values():
            self._set_max_shared(function)

    def resident_blocks(self, threads: int, shared: int) -> int:
        """How many blocks of this kernel the current device runs at once (all multiprocessors); asked of
        the driver once per device and launch shape, as a persistent kernel needs it at every call."""
        key = (cp.cuda.Device().id, threads, shared)
        if key not in self._resident:
            driver, function = cp.cuda.driver, self._function()
            per_sm = driver.occupancyMaxActiveBlocksPerMultiprocessor(function.ptr, threads, shared)
            self._resident[key] = max(1, per_sm) * cp.cuda.Device().attributes["MultiProcessorCount"]
        return self._resident[key]

    def __call__(self, grid, block, args, shared_mem: int = 0) -> None:
        self._function()(grid, block, args, shared_mem=shared_mem)
