"""CPU kernels of the quantized matrix ops (see workbench/ir/opdefs/quantized.py for the recipe).

Integer layers are bit-faithful: the int8 x int8 products are summed exactly (ConvInteger's
kernel and a float64 matmul are exact while |sums| < 2**53, far above any int32 accumulator),
the int32 bias is added to the integer accumulator, and dequantization is one float32 multiply.
float8 layers quantize both operands to e4m3 and accumulate in float32, as Hopper does.
"""
from __future__ import annotations

import numpy as np

from ....errors import UnsupportedError
from ....ir.ops import attributes, spec_for
from ....ir.opdefs.quantized import CONV_ATTRS, DOMAIN
from ....quant.numerics import fake_quantize, is_integer, quantize
from ..registry import kernel, kernel_for
from .fused import activate


def _onnx(op: str):
    fn = kernel_for(op)
    if fn is None:
        raise UnsupportedError(f"the quantized op needs the CPU kernel of {op}, which is not registered")
    return fn


def _channels(values, axis: int, ndim: int, dtype) -> np.ndarray:
    """A per-channel list (or single value) shaped to broadcast along `axis` of an ndim-array."""
    v = np.asarray(values if values is not None else 0, dtype)
    if v.size == 1:
        return v.reshape(())
    return v.reshape([-1 if i == axis % ndim else 1 for i in range(ndim)])


def _input(x, x_scale, x_zero_point, x_dtype):
    """The layer's float32 input quantized to x_dtype."""
    return quantize(x, np.float32(x_scale), x_zero_point, x_dtype)


def _weights_zero_point(w, w_zero_point, w_axis):
    if w_zero_point is None or not np.any(np.asarray(w_zero_point)):
        return None
    return np.asarray(w_zero_point, np.float64).reshape(-1) if np.size(w_zero_point) > 1 else \
        np.float64(np.asarray(w_zero_point).reshape(-1)[0])


def _epilogue(acc, b, residual, channel_axis, *, x_scale, x_dtype, w_scale, activation, activation_alpha,
              activation_beta, y_scale, y_zero_point, y_dtype, **_):
    """Bias, dequantization, residual, activation and optional output rounding, in that order."""
    unit = np.float32(x_scale) * _channels(w_scale, channel_axis, acc.ndim, np.float32)
    if is_integer(x_dtype):
        if b is not None:
            acc = acc + _channels(b.astype(np.int64), channel_axis, acc.ndim, np.int64)
        y = acc.astype(np.float32) * unit
    else:
        y = acc.astype(np.float32) * unit
        if b is not None:
            y += _channels(b, channel_axis, acc.ndim, np.float32)
    if residual is not None:
        y = y + residual.astype(np.float32)
    y = activate(y, activation, activation_alpha, activation_beta)
    if y_scale is not None:
        y = fake_quantize(y, np.float32(y_scale), y_zero_point, y_dtype)
    return y.astype(np.float32, copy=False)


@kernel("QLinearConvFused", domain=DOMAIN)
def qlinear_conv_fused(x, w, b=None, residual=None, **attrs):
    """Quantized convolution: int8/uint8 exactly through ConvInteger, float8 in float32."""
    conv = {k: attrs[k] for k in CONV_ATTRS}
    xq, x_zp = _input(x, attrs["x_scale"], attrs["x_zero_point"], attrs["x_dtype"]), attrs["x_zero_point"]
    if is_integer(attrs["x_dtype"]):
        w_zp = _weights_zero_point(w, attrs["w_zero_point"], attrs["w_axis"])
        zps = [np.asarray(x_zp, xq.dtype), None if w_zp is None else np.asarray(w_zp).astype(w.dtype)]
        acc = _onnx("ConvInteger")(xq, w, *zps, **attributes(spec_for("ConvInteger"), conv, "QLinearConvFused"))
        acc = acc.astype(np.int64)
    else:
        acc = _onnx("Conv")(xq.astype(np.float32), w.astype(np.float32), None, **conv)
    return _epilogue(acc, b, residual, 1, **attrs)


@kernel("QGemm", domain=DOMAIN)
def qgemm(x, w, b=None, **attrs):
    """Quantized x @ W^T: an exact float64 matmul of the integers, or float32 for float8."""
    xq, x_zp = _input(x, attrs["x_scale"], attrs["x_zero_point"], attrs["x_dtype"]), attrs["x_zero_point"]
    if is_integer(attrs["x_dtype"]):
        xi = xq.astype(np.float64) - np.float64(x_zp)
        wi = w.astype(np.float64)
        w_zp = _weights_zero_point(w, attrs["w_zero_point"], attrs["w_axis"])
        if w_zp is not None:
            wi -= _channels(w_zp, 0, 2, np.float64)
        acc = np.matmul(xi, wi.T).astype(np.int64)
    else:
        acc = np.matmul(xq.astype(np.float32), w.astype(np.float32).T)
    return _epilogue(acc, b, None, -1, **attrs)
