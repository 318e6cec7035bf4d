"""Softmax, LogSoftmax and Hardmax kernels against onnx.reference, at new and old opsets."""
import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand

OPS = ["Softmax", "LogSoftmax", "Hardmax"]


def _onnxruntime(op, x, attrs, opset):
    """onnxruntime's outputs: onnx.reference applies opset-13 semantics at every opset."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], **attrs)], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], ir_version=8)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})


@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1, -3])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_single_axis_semantics_from_opset_13(op, axis, dtype):
    attrs = {} if axis is None else {"axis": axis}
    x = rand(3, 4, 5, dtype=dtype, low=-5, high=5)
    check(op, [x], attrs, rtol=3e-3 if dtype == "float16" else 1e-5, atol=3e-3 if dtype == "float16" else 1e-6)


@pytest.mark.parametrize("axis", [None, 0, 1, 2, -1])
@pytest.mark.parametrize("op", OPS)
def test_flattened_2d_semantics_before_opset_13(op, axis):
    """Before opset 13 the default axis is 1 and all dims from it on are normalized together."""
    attrs = {} if axis is None else {"axis": axis}
    x = rand(2, 3, 4, low=-5, high=5)
    (want,) = _onnxruntime(op, x, attrs, opset=11)
    (got,) = ours(op, [x], {**attrs, "_opset": 11})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_softmax_is_stable_for_large_inputs():
    x = np.array([[1000.0, 1000.0, -1000.0]], dtype=np.float32)
    with np.errstate(all="raise"):
        (out,) = ours("Softmax", [x])
    np.testing.assert_allclose(out, [[0.5, 0.5, 0.0]])


def test_hardmax_marks_only_the_first_maximum():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]], dtype=np.float32)
    np.testing.assert_array_equal(ours("Hardmax", [x])[0], [[0, 1, 0], [1, 0, 0]])


@pytest.mark.parametrize("op", OPS)
def test_bfloat16_is_computed_in_float32(op):
    x = rand(4, 8, low=-4, high=4).astype(ml_dtypes.bfloat16)
    (got,) = ours(op, [x])
    (want,) = ours(op, [x.astype(np.float32)])
    assert got.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(got, want.astype(ml_dtypes.bfloat16))
