"""Matrix-product kernels. Float16/bfloat16 multiply in float32; integer ones exactly in float64."""
from __future__ import annotations

import numpy as np

from ..registry import kernel
from ..windowing import compute_dtype, upcast


@kernel("Gemm")
def gemm(a, b, c=None, *, alpha, beta, transA, transB):
    """ONNX Gemm: alpha * A' B' + beta * C (C broadcast to (M, N))."""
    # integer Gemm still scales by float alpha/beta: compute those in float64 (exact for int32)
    ct = np.dtype(np.float64) if np.issubdtype(a.dtype, np.integer) else compute_dtype(a.dtype)
    am, bm = a.astype(ct, copy=False), b.astype(ct, copy=False)
    y = (am.T if transA else am) @ (bm.T if transB else bm)
    if alpha != 1.0:
        y *= ct.type(alpha)
    if c is not None and beta != 0.0:
        cc = c.astype(ct, copy=False)
        y += cc * ct.type(beta) if beta != 1.0 else cc
    return y.astype(a.dtype, copy=False)


@kernel("MatMul")
def matmul(a, b):
    """ONNX MatMul (numpy.matmul semantics)."""
    return np.matmul(upcast(a), upcast(b)).astype(a.dtype, copy=False)


def _zero_point_rows(zp, a):
    """a_zero_point: scalar, or one per row of A (shape (M,)), broadcast against A."""
    zp = np.asarray(zp, np.float64)
    return zp.reshape(-1, 1) if zp.size > 1 else zp.reshape(())


def _integer_matmul(a, b, a_zero_point, b_zero_point) -> np.ndarray:
    """Exact (A - a_zp) @ (B - b_zp) in float64 (BLAS speed; int32-range sums are exact)."""
    af, bf = a.astype(np.float64), b.astype(np.float64)
    if a_zero_point is not None:
        af -= _zero_point_rows(a_zero_point, a) if a.ndim > 1 else np.asarray(a_zero_point, np.float64)
    if b_zero_point is not None:
        bf -= np.asarray(b_zero_point, np.float64)
    return np.matmul(af, bf)


@kernel("MatMulInteger")
def matmul_integer(a, b, a_zero_point=None, b_zero_point=None):
    """ONNX MatMulInteger: int32 output."""
    return _integer_matmul(a, b, a_zero_point, b_zero_point).astype(np.int32)


@kernel("QLinearMatMul")
def qlinear_matmul(a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point):
    """ONNX QLinearMatMul: integer matmul requantized (round half to even, saturate)."""
    acc = _integer_matmul(a, b, a_zero_point, b_zero_point)
    # the multiplier is formed in the scales' own dtype, as the reference does
    multiplier = (np.asarray(a_scale) * np.asarray(b_scale) / np.asarray(y_scale)).astype(np.float64)
    y = np.rint(acc * multiplier + np.asarray(y_zero_point, np.float64))
    info = np.iinfo(y_zero_point.dtype)
    return np.clip(y, info.min, info.max).astype(y_zero_point.dtype)


@kernel("Einsum")
def einsum(*inputs, equation):
    """ONNX Einsum via numpy.einsum(optimize=True)."""
    dtype = inputs[0].dtype
    ops = [upcast(x) for x in inputs]
    y = np.einsum(equation.replace(" ", ""), *ops, optimize=len(ops) > 1)
    return np.array(y, dtype=dtype)  # a fresh contiguous array (diagonals are views), 0-d kept 0-d
