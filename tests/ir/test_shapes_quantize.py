import numpy as np
import pytest

from tests.ir.shapecheck import agrees, infer
from tests.oracle import rand
from workbench.errors import ShapeError
from workbench.ir.ops import Info

X = Info("float32", ("N", 4, "H"))
S = Info("float32", ())


@pytest.mark.parametrize("zp, output_dtype, expect", [
    (None, 0, "uint8"),
    (Info("int8", ()), 0, "int8"),
    (None, 3, "int8"),
    (None, 17, "float8_e4m3fn"),
    (None, 22, "int4"),
    (Info("uint16", ()), 4, "uint16"),
])
def test_quantize_output_dtype(zp, output_dtype, expect):
    assert infer("QuantizeLinear", X, S, zp, output_dtype=output_dtype)[0] == Info(expect, X.shape)


def test_quantize_conflicting_output_dtype():
    with pytest.raises(ShapeError, match="differs"):
        infer("QuantizeLinear", X, S, Info("int8", ()), output_dtype=2)


@pytest.mark.parametrize("scale_dtype, output_dtype, expect", [
    ("float32", 0, "float32"), ("float16", 0, "float16"), ("float32", 16, "bfloat16")])
def test_dequantize_output_dtype(scale_dtype, output_dtype, expect):
    out = infer("DequantizeLinear", Info("int8", X.shape), Info(scale_dtype, (4,)), output_dtype=output_dtype)
    assert out[0] == Info(expect, X.shape)


def test_dynamic_quantize_outputs():
    agrees("DynamicQuantizeLinear", [rand(3, 5)], [("N", 5)], {"N": 3})


def test_quantize_per_axis_against_kernel():
    x = rand(2, 4, 3)
    agrees("QuantizeLinear", [x, np.float32([0.1, 0.2, 0.3, 0.4]), np.int8([1, 2, 3, 4])],
           [X.shape, None, None], {"N": 2, "H": 3})
