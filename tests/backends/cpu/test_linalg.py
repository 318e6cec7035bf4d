import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand, reference


@pytest.mark.parametrize("ta, tb", [(0, 0), (1, 0), (0, 1), (1, 1)])
@pytest.mark.parametrize("c_shape", [None, (), (1,), (6,), (4, 1), (4, 6)])
def test_gemm(ta, tb, c_shape):
    a = rand(*((5, 4) if ta else (4, 5)))
    b = rand(*((6, 5) if tb else (5, 6)))
    c = None if c_shape is None else rand(*c_shape)
    check("Gemm", [a, b, c], dict(transA=ta, transB=tb, alpha=0.7, beta=-1.3), rtol=1e-5, atol=1e-5)


def test_gemm_default_coefficients_and_float64():
    check("Gemm", [rand(3, 4, dtype="float64"), rand(4, 2, dtype="float64"), rand(2, dtype="float64")])


@pytest.mark.parametrize("sa, sb", [
    ((3, 4), (4, 5)), ((2, 3, 4), (4, 5)), ((4,), (2, 4, 5)), ((2, 3, 4), (4,)), ((4,), (4,)),
    ((2, 1, 3, 4), (1, 5, 4, 2)), ((5, 3, 4), (5, 4, 6)),
])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64"])
def test_matmul(sa, sb, dtype):
    check("MatMul", [rand(*sa, low=-5, high=5).astype(dtype), rand(*sb, low=-5, high=5).astype(dtype)],
          rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_matmul_low_precision_rounds_once(dtype):
    a, b = rand(3, 40).astype(dtype), rand(40, 2).astype(dtype)
    got = ours("MatMul", [a, b])[0]
    want = (a.astype(np.float32) @ b.astype(np.float32)).astype(dtype)
    assert got.dtype == np.dtype(getattr(ml_dtypes, dtype, dtype))
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("a_dtype, b_dtype", [("uint8", "uint8"), ("int8", "int8"), ("uint8", "int8")])
def test_matmul_integer(a_dtype, b_dtype):
    rng = np.random.default_rng(0)
    a = rng.integers(0, 120, (2, 3, 5)).astype(a_dtype)
    b = rng.integers(0, 120, (5, 4)).astype(b_dtype)
    check("MatMulInteger", [a, b, np.array(3, a_dtype), np.arange(4).astype(b_dtype)])
    # per-row zero point (onnx.reference does not broadcast it)
    got = ours("MatMulInteger", [a[0], b, np.arange(3).astype(a_dtype), None])[0]
    np.testing.assert_array_equal(got, (a[0].astype(np.int32) - np.arange(3)[:, None]) @ b.astype(np.int32))


@pytest.mark.parametrize("out_dtype", ["uint8", "int8"])
def test_qlinear_matmul(out_dtype):
    rng = np.random.default_rng(2)
    a = rng.integers(0, 255, (2, 3, 6)).astype(np.uint8)
    b = rng.integers(0, 255, (6, 4)).astype(np.uint8)
    f = np.float32
    check("QLinearMatMul", [a, f(0.05), np.uint8(100), b, f(0.02), np.uint8(90), f(0.4), np.array(7, out_dtype)])


@pytest.mark.parametrize("eq, shapes", [
    ("ij->ji", [(3, 4)]), ("ij->i", [(3, 4)]), ("...ii->...i", [(2, 3, 3)]), ("i,i", [(5,), (5,)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]), ("bij, bjk -> bik", [(2, 3, 4), (2, 4, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 2)]), ("b...d,d->b...", [(2, 3, 4), (4,)]), ("ii", [(3, 3)]),
    ("bhqd,bhkd->bhqk", [(1, 2, 3, 4), (1, 2, 5, 4)]),
])
def test_einsum(eq, shapes):
    check("Einsum", [rand(*s) for s in shapes], dict(equation=eq), rtol=1e-5, atol=1e-5)


def test_einsum_bfloat16_accumulates_in_float32():
    x, y = rand(2, 3, 8), rand(2, 8, 2)
    xb, yb = x.astype(ml_dtypes.bfloat16), y.astype(ml_dtypes.bfloat16)
    got = ours("Einsum", [xb, yb], dict(equation="bij,bjk->bik"))[0]
    want = reference("Einsum", [xb, yb], dict(equation="bij,bjk->bik"))[0]
    np.testing.assert_array_equal(got, want)
