"""Tensor maps for Hopper's tensor memory accelerator (TMA): what a kernel's cp.async.bulk.tensor reads.

A tensor map describes a 2-D operand of bytes (int8 or E4M3) in device memory (rows of K contiguous bytes)
and the box one copy moves into shared memory, here `box_rows` rows of 128 bytes in the 128-byte swizzle
that wgmma reads. The driver encodes it (cuTensorMapEncodeTiled, called through ctypes: CuPy does not
bind it); the kernel takes the 128 bytes by value as a `const __grid_constant__` parameter, which CuPy
passes from a NumPy array of one element. Rows and K past the operand's edge arrive as zeros.

    >>> tx = tensor_map(xq, 128)      # xq: CuPy int8 or uint8 (M, K), K a multiple of 16
    >>> kernel(grid, block, (tx, tw, ..., y, m, n, k))
"""
from __future__ import annotations

import ctypes
import functools

import numpy as np

MAP_BYTES = 128
BOX_BYTES = 128          # the 128-byte swizzle: one box row is one swizzle row
MAX_BOX_ROWS = 256
_UINT8, _INTERLEAVE_NONE, _SWIZZLE_128B, _L2_256B, _OOB_ZERO = 0, 0, 3, 3, 0
TENSOR_MAP = np.dtype([("bytes", np.uint64, (MAP_BYTES // 8,))])


@functools.lru_cache(maxsize=1)
def _encoder():
    lib = ctypes.CDLL("libcuda.so.1")
    fn = lib.cuTensorMapEncodeTiled
    u64p, u32p = ctypes.POINTER(ctypes.c_uint64), ctypes.POINTER(ctypes.c_uint32)
    fn.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32, ctypes.c_void_p, u64p, u64p, u32p, u32p,
                   ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def missing() -> str | None:
    """Why tensor maps cannot be made here (no CUDA driver library), or None."""
    try:
        _encoder()
    except (OSError, AttributeError) as e:
        return f"the CUDA driver's cuTensorMapEncodeTiled is not available ({e})"
    return None


def check_operand(rows: int, k: int, ptr: int, box_rows: int) -> None:
    """Raise ValueError where TMA cannot describe a (rows, k) byte operand at `ptr` in boxes of box_rows."""
    if k % 16 or ptr % 16:
        raise ValueError(f"TMA needs 16-byte aligned rows and base: K={k}, address {ptr:#x}")
    if not 0 < box_rows <= MAX_BOX_ROWS:
        raise ValueError(f"a TMA box has 1 to {MAX_BOX_ROWS} rows, got {box_rows}")
    if rows <= 0:
        raise ValueError(f"an operand needs rows, got {rows}")


def encode(ptr: int, rows: int, k: int, box_rows: int, encoder=None) -> np.ndarray:
    """The tensor map (a NumPy array of one TENSOR_MAP) of the (rows, k) row-major byte operand at device
    address `ptr`, copied in boxes of box_rows x 128 bytes. `encoder`: cuTensorMapEncodeTiled's stand-in."""
    check_operand(rows, k, ptr, box_rows)
    out = np.zeros(1, TENSOR_MAP)
    dims = (ctypes.c_uint64 * 2)(k, rows)
    strides = (ctypes.c_uint64 * 1)(k)
    box = (ctypes.c_uint32 * 2)(BOX_BYTES, box_rows)
    unit = (ctypes.c_uint32 * 2)(1, 1)
    status = (encoder or _encoder())(out.ctypes.data, _UINT8, 2, ptr, dims, strides, box, unit, _INTERLEAVE_NONE,
                                     _SWIZZLE_128B, _L2_256B, _OOB_ZERO)
    if status != 0:
        raise RuntimeError(f"cuTensorMapEncodeTiled failed (CUresult {status}) for ({rows}, {k}) bytes at {ptr:#x}, "
                           f"box {box_rows} x {BOX_BYTES}")
    return out


def tensor_map(a, box_rows: int) -> np.ndarray:
    """encode() for a C-contiguous CuPy matrix of bytes (int8, or uint8 holding E4M3); a map depends only on
    the address, the shape and the box, so maps are kept for the addresses that recur (weights, a planned
    arena's activations)."""
    if a.ndim != 2 or a.dtype.itemsize != 1 or not a.flags.c_contiguous:
        raise ValueError(f"TMA takes a C-contiguous 2-D matrix of bytes, got {a.dtype} {a.shape}")
    return _encoded(int(a.data.ptr), a.shape[0], a.shape[1], box_rows)


@functools.lru_cache(maxsize=1024)
def _encoded(ptr: int, rows: int, k: int, box_rows: int) -> np.ndarray:
    return encode(ptr, rows, k, box_rows)
