"""Stream kernels (backends/cuda/stream.py) against CuPy's ElementwiseKernel with the same source."""
from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.gpu

# explicit roundings: NVRTC may contract a * b + c into an FMA differently in the two kernels
OP = "float v = __fadd_rn(__fmul_rn((float)x, unit), (float)r); y = v;"


@pytest.mark.parametrize("shape", [(2, 7, 7, 64), (3, 5, 300), (4, 3), (1000,), (140001, 3), (70001, 64)])
@pytest.mark.parametrize("out", ["float16", "float32"])
def test_stream_matches_elementwise(shape, out):
    import cupy as cp

    from workbench.backends.cuda.stream import StreamKernel

    rng = np.random.default_rng()
    k = StreamKernel("float16 x, float32 unit, float32 r", f"{out} y", OP, f"t_stream_{out}")
    x = cp.asarray(rng.standard_normal(shape), cp.float16)
    unit = cp.asarray(rng.standard_normal(shape[-1]), cp.float32)
    r = cp.asarray(rng.standard_normal(shape), cp.float32)
    got, want = k(x, unit, r), k.fallback(x, unit, r)
    assert got.dtype == want.dtype and got.shape == want.shape
    assert cp.array_equal(got, want)


def test_strided_arguments_take_cupys_kernel():
    import cupy as cp

    from workbench.backends.cuda.stream import StreamKernel

    rng = np.random.default_rng()
    k = StreamKernel("float32 x", "int8 y", "y = (signed char)rintf(x);", "t_stream_strided")
    x = cp.asarray(rng.standard_normal((4, 6, 5, 3)) * 50, cp.float32).transpose(0, 2, 3, 1)  # not contiguous
    np.testing.assert_array_equal(cp.asnumpy(k(x)), np.rint(cp.asnumpy(x)).astype(np.int8))
    flat = cp.asarray(rng.standard_normal((2, 17, 33)) * 50, cp.float32)  # no column vectors, odd sizes
    np.testing.assert_array_equal(cp.asnumpy(k(flat)), np.rint(cp.asnumpy(flat)).astype(np.int8))


@pytest.mark.parametrize("shape", [(8,), (3, 5, 64), (12345, 8), (1 << 22,)])
@pytest.mark.parametrize("dtype,out", [("float16", "int8"), ("float32", "uint8"), ("float16", "float32"),
                                       ("float32", "float16")])
def test_vector_form_matches_elementwise(shape, dtype, out):
    """Streams without column vectors, aligned and a multiple of 8 long, move 8 elements a thread; an
    unaligned view of the same data takes the row form, with the same values."""
    import cupy as cp

    from workbench.backends.cuda.stream import StreamKernel

    rng = np.random.default_rng()
    v = "__fadd_rn(__fmul_rn((float)x, 3.0f), (float)r)"
    lo, hi = (-128, 127) if out == "int8" else (0, 255)
    op = f"y = {v};" if out.startswith("float") else f"y = fminf(fmaxf(rintf({v}), {lo}.0f), {hi}.0f);"
    k = StreamKernel(f"{dtype} x, {dtype} r", f"{out} y", op, f"t_vector_{dtype}_{out}")
    n = int(np.prod(shape))
    base = cp.asarray(rng.standard_normal(2 * n + 8) * 40, dtype)
    x, r = base[:n].reshape(shape), base[n + 8:].reshape(shape)
    got, want = k(x, r), k.fallback(x, r)
    assert None in k._raw and got.dtype == want.dtype and cp.array_equal(got, want)
    shifted = base[1:n + 1].reshape(shape)  # 2 or 4 bytes off a 16-byte boundary
    k._raw.clear()
    assert cp.array_equal(k(shifted, r), k.fallback(shifted, r)) and None not in k._raw
