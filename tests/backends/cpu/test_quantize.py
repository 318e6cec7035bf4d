import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand, reference

F = np.float32


@pytest.mark.parametrize("zp", [np.uint8(128), np.int8(-3), np.uint16(1000), np.int16(-7),
                                ml_dtypes.int4(2), ml_dtypes.uint4(9), None])
def test_quantize_per_tensor(zp):
    x = rand(3, 4, low=-20, high=20)
    check("QuantizeLinear", [x, F(0.07), None if zp is None else np.asarray(zp)])


def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000, -1000], F)
    got = ours("QuantizeLinear", [x, F(1), np.int8(0)])[0]
    np.testing.assert_array_equal(got, [0, 2, 2, 0, -2, 127, -128])


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_quantize_dequantize_per_axis(axis):
    x = rand(3, 4, 5, low=-10, high=10)
    n = x.shape[axis]
    scale, zp = rand(n, low=0.05, high=0.2), np.arange(n).astype(np.int8)
    check("QuantizeLinear", [x, scale, zp], dict(axis=axis))
    q = ours("QuantizeLinear", [x, scale, zp], dict(axis=axis))[0]
    check("DequantizeLinear", [q, scale, zp], dict(axis=axis))


@pytest.mark.parametrize("block, axis", [(2, 1), (3, 1), (4, 0)])
def test_quantize_dequantize_blocked(block, axis):
    x = rand(8, 6, low=-5, high=5)
    n_blocks = -(-x.shape[axis] // block)
    pshape = (8, n_blocks) if axis == 1 else (n_blocks, 6)
    scale, zp = rand(*pshape, low=0.02, high=0.1), (rand(*pshape, low=0, high=20)).astype(np.uint8)
    check("QuantizeLinear", [x, scale, zp], dict(axis=axis, block_size=block))
    q = ours("QuantizeLinear", [x, scale, zp], dict(axis=axis, block_size=block))[0]
    check("DequantizeLinear", [q, scale, zp], dict(axis=axis, block_size=block))


@pytest.mark.parametrize("code", [17, 19, 21, 22, 3, 4])
@pytest.mark.parametrize("saturate", [0, 1])
def test_quantize_output_dtype_and_saturate(code, saturate):
    x = rand(4, 5, low=-600, high=600)
    attrs = dict(output_dtype=code, saturate=saturate)
    want = reference("QuantizeLinear", [x, F(0.5)], attrs)[0]
    got = ours("QuantizeLinear", [x, F(0.5)], attrs)[0]
    assert got.dtype == want.dtype
    # compared as float32 so that NaNs (float8 overflow without saturation) count as equal
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))


@pytest.mark.parametrize("dtype", ["float8_e4m3fn", "float8_e5m2", "int4", "uint4", "int8", "uint16"])
def test_dequantize_exotic_inputs(dtype):
    x = rand(3, 4, low=0, high=7).astype(getattr(ml_dtypes, dtype, dtype))
    check("DequantizeLinear", [x, F(0.25)])
    check("DequantizeLinear", [x, np.float16(0.25)])


def test_dequantize_output_dtype_and_precision():
    x = np.arange(-5, 5, dtype=np.int8)
    check("DequantizeLinear", [x, F(0.1), np.int8(1)], dict(output_dtype=16))
    check("QuantizeLinear", [rand(6, low=-30, high=30), F(0.3), np.int8(0)], dict(precision=11))


@pytest.mark.parametrize("low, high", [(-3, 5), (0.5, 4), (-6, -1)])
def test_dynamic_quantize_linear(low, high):
    check("DynamicQuantizeLinear", [rand(4, 7, low=low, high=high)], n_out=3)
