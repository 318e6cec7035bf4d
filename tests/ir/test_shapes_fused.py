"""Shape rules of the fused ops: the base op's rule, with symbolic dims, plus residual/bias broadcast."""
import pytest

from workbench.errors import UnsupportedError
from workbench.ir.ops import Info, attributes, spec_for


def _rule(op, *infos, **attrs):
    base = {"FusedConv": "Conv", "FusedGemm": "Gemm", "FusedMatMul": "MatMul"}[op]
    if spec_for(base) is None:
        pytest.skip(f"no {base} spec yet")
    spec = spec_for(op, "workbench")
    return spec.shape_rule(*infos, **attributes(spec, attrs, op))


def test_fused_conv_keeps_symbolic_batch_and_takes_a_residual():
    x, w = Info("float32", ("batch", 3, 8, 8)), Info("float32", (4, 3, 3, 3))
    r = Info("float32", ("batch", 4, 8, 8))
    out = _rule("FusedConv", x, w, None, r, pads=[1, 1, 1, 1], activation="Relu")
    assert out == Info("float32", ("batch", 4, 8, 8))


def test_fused_gemm_and_matmul_shapes():
    a, b = Info("float32", ("n", 5)), Info("float32", (6, 5))
    assert _rule("FusedGemm", a, b, Info("float32", (6,)), transB=1).shape == ("n", 6)
    x = Info("float32", ("batch", "seq", 5))
    out = _rule("FusedMatMul", x, Info("float32", (5, 7)), Info("float32", (7,)), activation="Gelu")
    assert out.shape == ("batch", "seq", 7)


def test_unknown_activation_is_refused():
    a, b = Info("float32", (2, 5)), Info("float32", (5, 3))
    with pytest.raises(UnsupportedError, match="Swoosh"):
        _rule("FusedMatMul", a, b, activation="Swoosh")
