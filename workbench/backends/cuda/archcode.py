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
_MODULES: dict = {}


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
    """One `extern "C"` kernel of `code` compiled for `arch`; called like cupy.RawKernel."""

    def __init__(self, code: str, name: str, arch: str):
        # a module lives in one device's context: each device loads its own
        key = (cp.cuda.Device().id, name, arch, hashlib.sha1(code.encode()).hexdigest())
        if key not in _MODULES:
            module = cp.cuda.function.Module()
            module.load(cubin(code, name, arch))
            _MODULES[key] = module
        self.module = _MODULES[key]
        self.function = self.module.get_function(name)

    def attribute(self, name: str) -> int:
        """A CU_FUNC_ATTRIBUTE_* value of the kernel ("NUM_REGS", "LOCAL_SIZE_BYTES", ...)."""
        driver = cp.cuda.driver
        return driver.funcGetAttribute(getattr(driver, f"CU_FUNC_ATTRIBUTE_{name}"), self.function.ptr)

    def allow_shared(self, nbytes: int) -> None:
        """Opt in to more than 48 KB of dynamic shared memory a block."""
        driver = cp.cuda.driver
        driver.funcSetAttribute(self.function.ptr, driver.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, nbytes)

    def __call__(self, grid, block, args, shared_mem: int = 0) -> None:
        self.function(grid, block, args, shared_mem=shared_mem)
