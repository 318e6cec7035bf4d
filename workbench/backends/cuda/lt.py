"""cuBLASLt through nvmath's raw bindings, for the products nvmath's high-level Matmul does not take.

FP8 operands come as uint8 arrays holding E4M3 bits (CuPy has no float8 dtype); the product is the
TN layout cuBLASLt requires for FP8 and runs int8 fastest in: D (M, N) row-major = X (M, K) . W (N, K)^T,
both K-contiguous. int8 operands accumulate exactly into int32 (integer alpha and beta).
Calls go to the device's stream, so they can be captured into a CUDA graph.

    >>> mm = LtMatmul(dev, m, n, k, E4M3, R32F)        # algorithms from cuBLASLt's heuristics
    >>> mm(x_bits, w_bits, out, np.full(1, 0.01, np.float32), algo=0)
    >>> LtMatmul(dev, m, n, k, R8I, R32I)(xq, wq, acc_int32, np.ones(1, np.int32))
"""
from __future__ import annotations

import numpy as np

from .device import library

R32F, R16F, R8I, R32I, E4M3 = 0, 2, 3, 10, 28  # cudaDataType
DTYPES = {R32F: np.float32, R16F: np.float16, R32I: np.int32}
WORKSPACE = 32 << 20
MAX_ALGOS = 8


def lt_missing() -> str | None:
    return "nvmath-python (cuBLASLt bindings) is not installed" if library("nvmath.bindings.cublasLt") is None \
        else None


def _handle(dev, lt):
    handle = lt.create()
    dev.on_close(lambda: lt.destroy(handle))
    return handle


def _set(lt, desc, attr, value) -> None:
    buf = np.array(value, dtype=lt.get_matmul_desc_attribute_dtype(attr))
    lt.matmul_desc_set_attribute(desc, attr, buf.ctypes.data, buf.itemsize)


class LtMatmul:
    """One planned TN product at fixed sizes and types; its heuristic algorithms are the candidates."""

    def __init__(self, dev, m: int, n: int, k: int, ab_type: int, d_type: int):
        self.lt = lt = library("nvmath.bindings.cublasLt")
        cublas = library("nvmath.bindings.cublas")
        self.dev, self.d_type = dev, d_type
        self.handle = dev.cached(("cublaslt-handle",), lambda: _handle(dev, lt))
        integer = ab_type == R8I
        self.scale = np.int32 if integer else np.float32
        self.desc = lt.matmul_desc_create(cublas.ComputeType.COMPUTE_32I if integer else cublas.ComputeType.COMPUTE_32F,
                                          R32I if integer else R32F)
        _set(lt, self.desc, lt.MatmulDescAttribute.TRANSA, cublas.Operation.T)
        _set(lt, self.desc, lt.MatmulDescAttribute.TRANSB, cublas.Operation.N)
        self.a = lt.matrix_layout_create(ab_type, k, n, k)
        self.b = lt.matrix_layout_create(ab_type, k, m, k)
        self.d = lt.matrix_layout_create(d_type, n, m, n)
        pref = lt.matmul_preference_create()
        attr = lt.MatmulPreferenceAttribute.MAX_WORKSPACE_BYTES
        buf = np.array(WORKSPACE, dtype=lt.get_matmul_preference_attribute_dtype(attr))
        lt.matmul_preference_set_attribute(pref, attr, buf.ctypes.data, buf.itemsize)
        self.results = lt.MatmulHeuristicResult(MAX_ALGOS)
        count = np.zeros(1, np.int32)
        lt.matmul_algo_get_heuristic(self.handle, self.desc, self.a, self.b, self.d, self.d, pref, MAX_ALGOS,
                                     self.results.ptr, count.ctypes.data)
        lt.matmul_preference_destroy(pref)
        self.count = int(count[0])
        if self.count == 0:
            raise RuntimeError("cuBLASLt has no algorithm for this product")
        self.beta = np.zeros(1, self.scale)

    def __call__(self, x, w, out, alpha: np.ndarray, algo: int = 0) -> None:
        """out = alpha * x . w^T; alpha is a host array of one value (float32; int32 for int8 operands),
        read when the call is made or captured; algo indexes the heuristic's algorithms (the caller
        checked it against count)."""
        ws = self.dev.workspace(WORKSPACE)
        self.lt.matmul(self.handle, self.desc, alpha.ctypes.data, w.data.ptr, self.a, x.data.ptr, self.b,
                       self.beta.ctypes.data, out.data.ptr, self.d, out.data.ptr, self.d,
                       self.results[algo]["algo"].ctypes.data, ws.data.ptr, WORKSPACE, self.dev.stream.ptr)
