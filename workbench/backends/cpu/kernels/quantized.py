"""CPU kernels of the quantized matrix ops (see workbench/ir/opdefs/quantized.py for the recipe).

Integer layers are bit-faithful: the int8 x int8 products are summed exactly, as int32 hardware
does (float32 Conv/matmul over chunks of the reduction small enough that every partial sum stays
below 2**24, the chunks added in int64; float64 where a grouped conv cannot be chunked), the
int32 bias is added to the integer accumulator, and dequantization is one float32 multiply.
float8 layers quantize both operands to e4m3 and accumulate in float32, as Hopper does.
Tensors between chained layers (quant/chain.py) arrive and leave as int8/uint8 grid integers:
an X already quantized is only centred, an integer residual is dequantized with one float32
multiply, and a y_quantized output is quantized where the next layer would have quantized it.
"""
from __future__ import annotations

import numpy as np

from ....errors import UnsupportedError
from ....ir.opdefs.quantized import CONV_ATTRS, DOMAIN
from ....quant.numerics import dequantize, fake_quantize, is_integer, quantize, quantize_centred
from ..registry import kernel, kernel_for
from .fused import activate

_F32_EXACT = float(2**24)  # integers below this are exact in float32, and so are sums that stay below it


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


def _fp8_input(x, attrs: dict) -> np.ndarray:
    """The float32 values of q(X) for a float8 layer."""
    return quantize(x, np.float32(attrs["x_scale"]), 0, attrs["x_dtype"]).astype(np.float32)


def _epilogue(acc, b, residual, channel_axis, *, x_scale, x_dtype, w_scale, activation, activation_alpha,
              activation_beta, y_scale, y_zero_point, y_dtype, y_quantized, r_scale=None, r_zero_point=0, **_):
    """Bias, dequantization, residual, activation and optional output rounding, in that order.

    A y_quantized output leaves as y_dtype grid integers, otherwise as float32.
    """
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
        y = y + _residual(residual, r_scale, r_zero_point)
    y = activate(y, activation, activation_alpha, activation_beta)
    if y_quantized:
        return quantize(y, np.float32(y_scale), y_zero_point, y_dtype)
    if y_scale is not None:
        y = fake_quantize(y, np.float32(y_scale), y_zero_point, y_dtype)
    return y.astype(np.float32, copy=False)


def _residual(residual, r_scale, r_zero_point) -> np.ndarray:
    """The residual's float32 values: grid integers are dequantized (r - r_zp) * r_scale in float32."""
    if residual.dtype.kind in "iu":
        return dequantize(residual, np.float32(r_scale), r_zero_point)
    return residual.astype(np.float32, copy=False)


def _centred(x, attrs: dict, w):
    """(q(X) - x_zp, Wq - w_zp) as float32 arrays of small integers (w_zp along W's axis 0).

    An integer X already holds q(X) (the shape rule checked its dtype is x_dtype): it is only centred.
    """
    if x.dtype.kind in "iu":
        xc = x.astype(np.float32)
        if attrs["x_zero_point"]:
            xc -= np.float32(attrs["x_zero_point"])
    else:
        xc = quantize_centred(x, attrs["x_scale"], attrs["x_zero_point"], attrs["x_dtype"])
    wc = w.astype(np.float32)
    w_zp = attrs["w_zero_point"]
    if w_zp is not None and np.any(np.asarray(w_zp)):
        wc -= _channels(w_zp, 0, w.ndim, np.float32)
    return xc, wc


def _exact_chunks(n: int, bound: float) -> list:
    """Slices of range(n) over which sums of terms bounded by `bound` each stay below 2**24.

    Below 2**24 every partial sum of integers is exact in float32, in any order, so float32
    BLAS computes each chunk exactly; the chunks are then added in int64.
    """
    step = max(1, int((_F32_EXACT - 1) // max(bound, 1.0)))
    return [slice(i, min(i + step, n)) for i in range(0, n, step)]


def _largest(xc) -> float:
    return float(max(-xc.min(initial=0), xc.max(initial=0)))


def _integer_sum(product, xc, wc, x_axis: int, taps: int, can_split: bool):
    """product(xc, wc) exactly, as int64: float32 in chunks of the reduction axis (xc's x_axis,
    wc's axis 1), or float64 when it would need chunks but cannot be split."""
    bound = _largest(xc) * float(np.abs(wc).max(initial=0)) * taps
    chunks = _exact_chunks(wc.shape[1], bound)
    if len(chunks) == 1:
        return product(xc, wc).astype(np.int64)
    if not can_split:
        return product(xc.astype(np.float64), wc.astype(np.float64)).astype(np.int64)
    head = (slice(None),) * (x_axis % xc.ndim)
    acc = product(xc[(*head, chunks[0])], wc[:, chunks[0]]).astype(np.int64)
    for s in chunks[1:]:
        acc += product(xc[(*head, s)], wc[:, s]).astype(np.int64)
    return acc


@kernel("QLinearConvFused", domain=DOMAIN)
def qlinear_conv_fused(x, w, b=None, residual=None, **attrs):
    """Quantized convolution: integers summed exactly (float32 chunks of input channels), float8 in float32."""
    conv = {k: attrs[k] for k in CONV_ATTRS}

    def product(xs, ws):
        return _onnx("Conv")(xs, ws, None, **conv)

    if is_integer(attrs["x_dtype"]):
        xc, wc = _centred(x, attrs, w)
        # zero padding of the centred input is padding q(X) with its zero point, as ONNX's QLinearConv does
        acc = _integer_sum(product, xc, wc, 1, int(np.prod(w.shape[2:])), can_split=conv["group"] == 1)
    else:
        acc = product(_fp8_input(x, attrs), w.astype(np.float32))
    return _epilogue(acc, b, residual, 1, **attrs)


@kernel("QGemm", domain=DOMAIN)
def qgemm(x, w, b=None, **attrs):
    """Quantized x @ W^T: integers summed exactly (float32 chunks of K), float8 in float32."""
    def product(xs, ws):
        return np.matmul(xs, ws.T)

    if is_integer(attrs["x_dtype"]):
        xc, wc = _centred(x, attrs, w)
        acc = _integer_sum(product, xc, wc, -1, 1, can_split=True)
    else:
        acc = product(_fp8_input(x, attrs), w.astype(np.float32))
    return _epilogue(acc, b, None, -1, **attrs)
