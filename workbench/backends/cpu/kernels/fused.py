"""CPU kernels of the optimizer's fused ops: the ONNX kernels composed, so the math is shared.

On the CPU a fused layer saves the executor's per-layer overhead and one buffer, not arithmetic;
the GPU backend runs the same layer as one kernel with an epilogue.
"""
from __future__ import annotations

import numpy as np

from ....errors import UnsupportedError
from ....ir.ops import attributes, spec_for
from ....ir.opdefs.fused import ACTIVATIONS, DOMAIN, base_attributes
from ..registry import kernel, kernel_for


def _onnx(op: str):
    fn = kernel_for(op)
    if fn is None:
        raise UnsupportedError(f"the fused op needs the CPU kernel of {op}, which is not registered")
    return fn


def activate(y: np.ndarray, activation, alpha, beta) -> np.ndarray:
    """Apply activation kind `activation` (None: none) with its parameters, through the ONNX kernel."""
    if activation is None:
        return y
    act = ACTIVATIONS[activation]
    params = dict(zip(act.params, (alpha, beta)))
    if act.params_are_inputs:
        bounds = [None if params.get(p) is None else np.asarray(params[p], y.dtype) for p in act.params]
        return _onnx(act.op)(y, *bounds, **attributes(spec_for(act.op), {}, act.op))
    given = {k: v for k, v in params.items() if v is not None}
    return _onnx(act.op)(y, **attributes(spec_for(act.op), {**act.fixed, **given}, act.op))


def _add(y, other):
    return y if other is None else _onnx("Add")(y, other)


@kernel("FusedConv", domain=DOMAIN)
def fused_conv(x, w, b=None, residual=None, *, activation, activation_alpha, activation_beta, **attrs):
    y = _onnx("Conv")(x, w, b, **base_attributes("FusedConv", attrs))
    return activate(_add(y, residual), activation, activation_alpha, activation_beta)


@kernel("FusedGemm", domain=DOMAIN)
def fused_gemm(a, b, c=None, *, activation, activation_alpha, activation_beta, **attrs):
    y = _onnx("Gemm")(a, b, c, **base_attributes("FusedGemm", attrs))
    return activate(y, activation, activation_alpha, activation_beta)


@kernel("FusedMatMul", domain=DOMAIN)
def fused_matmul(a, b, bias=None, *, activation, activation_alpha, activation_beta):
    y = _onnx("MatMul")(a, b)
    return activate(_add(y, bias), activation, activation_alpha, activation_beta)
