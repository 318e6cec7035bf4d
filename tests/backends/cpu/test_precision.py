import ml_dtypes
import numpy as np
import pytest

import workbench as wb
from tests.models.tiny import add_relu
from workbench.backends.cpu.precision import round_tf32


@pytest.mark.parametrize("precision,dtype", [("fp16", np.float16), ("bf16", ml_dtypes.bfloat16)])
def test_low_precision_rounds_each_layer_output(precision, dtype):
    net = wb.load_onnx(add_relu(features=64))
    engine = wb.build(net, wb.BuilderConfig(device="cpu", precision=precision, max_batch=8))
    x = np.random.default_rng(2).standard_normal((8, 64)).astype(np.float32)
    got = engine.create_execution_context().execute({"x": x})["y"]
    w = net.weights["w"].astype(dtype).astype(np.float32)
    t = (x.astype(dtype).astype(np.float32) + w).astype(dtype).astype(np.float32)
    want = np.maximum(t, 0).astype(dtype).astype(np.float32)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert not np.array_equal(got, np.maximum(x + net.weights["w"], 0))  # it really was rounded


def test_tf32_keeps_ten_mantissa_bits():
    x = np.random.default_rng(3).standard_normal(1000).astype(np.float32)
    r = round_tf32(x)
    assert np.all(r.view(np.uint32) & 0x1FFF == 0)
    assert np.max(np.abs(r - x) / np.abs(x)) <= 2.0 ** -11
