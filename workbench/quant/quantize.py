"""Implicit quantization: a pure Network -> Network pass that turns matrix layers into quantized ones.

Conv / FusedConv with a constant weight become QLinearConvFused; Gemm / FusedGemm / MatMul /
FusedMatMul with a constant 2-D weight become QGemm (weights laid out (N, K)). Activations are
quantized per tensor, symmetric, with the calibrated scale of the layer's input; weights per
output channel, symmetric (int8) or per tensor (fp8, E4M3); the bias becomes int32 in units of
x_scale * w_scale (fp8 keeps a float32 bias). Layers keep their names, so reports and
`layer_precisions` refer to them as before. Anything else is left for the float fallback.

    >>> qnet = quantize_network(net, scales, "int8")            # every eligible layer
    >>> reasons = eligibility(net, scales)                      # {layer: None or why not}
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..ir import Layer, Tensor
from ..ir.opdefs.quantized import ACTIVATION_ATTRS, CONV_ATTRS, DOMAIN, QUANTIZED_OPS
from .numerics import FP8, QMAX, quantize_bias, quantize_weights

CONV_OPS = ("Conv", "FusedConv")
GEMM_OPS = ("Gemm", "FusedGemm")
MATMUL_OPS = ("MatMul", "FusedMatMul")
MATRIX_OPS = CONV_OPS + GEMM_OPS + MATMUL_OPS
PRECISIONS = ("int8", "fp8")


@dataclass
class Matrix:
    """A matrix layer seen the same way whatever its op: y = act(x (*) w + b + residual)."""

    layer: Layer
    conv: bool                   # True: w is a conv kernel (M, C/g, *k); False: w is (N, K)
    x: str
    w: np.ndarray | None = None  # float32 weight with Gemm's alpha folded in
    b: np.ndarray | None = None  # float32 per-channel bias with Gemm's beta folded in
    residual: str | None = None
    attrs: dict = field(default_factory=dict)  # conv geometry and activation to carry over


def is_matrix(layer) -> bool:
    return layer.op in MATRIX_OPS and layer.domain in ("", DOMAIN)


def is_quantized(layer) -> bool:
    return layer.op in QUANTIZED_OPS and layer.domain == DOMAIN


def as_matrix(net, layer, weight=None):
    """The Matrix view of `layer`, or a string saying why it has none.

    `weight(name)` gives a constant's float32 value or None (default: the network's float32
    weights); the explicit-quantization pass passes its own, which reads through DequantizeLinear.
    """
    weight = weight or (lambda n: _float_weight(net, n))
    ins = list(layer.inputs) + [""] * 4
    x = ins[0]
    if not x or net.tensors[x].dtype != "float32":
        return "its input is not a float32 tensor"
    w = weight(ins[1])
    if w is None:
        return f"its weight {ins[1]!r} is not a constant"
    carried = {k: v for k, v in layer.attrs.items() if k in ACTIVATION_ATTRS}
    if layer.op in CONV_OPS:
        carried.update({k: v for k, v in layer.attrs.items() if k in CONV_ATTRS})
        m = Matrix(layer, True, x, w, None, ins[3] or None, carried)
    elif layer.op in GEMM_OPS:
        m = _gemm(layer, x, w, carried)
    elif w.ndim != 2:
        return f"its weight has shape {w.shape}; only 2-D MatMul weights are quantized"
    else:
        m = Matrix(layer, False, x, np.ascontiguousarray(w.T), None, None, carried)
    return _with_bias(m, weight(ins[2]), ins[2], layer.attrs.get("beta", 1.0)) if ins[2] else m


def _gemm(layer, x, w, carried):
    a = layer.attrs
    if a.get("transA", 0):
        return "transA=1 (the activation would need a transpose first)"
    w = w if a.get("transB", 0) else w.T
    return Matrix(layer, False, x, np.ascontiguousarray(w * np.float32(a.get("alpha", 1.0)), np.float32),
                  None, None, carried)


def _with_bias(m, b, name: str, beta: float):
    """m with its bias as one float32 per output channel (beta folded), or a reason it cannot have it."""
    if isinstance(m, str):
        return m
    if b is None:
        return f"its bias {name!r} is not a constant"
    channels = m.w.shape[0]
    if b.size not in (1, channels) or (b.ndim and b.size != 1 and b.shape[-1] != b.size):
        return f"its bias of shape {b.shape} is not one value per output channel"
    m.b = np.broadcast_to(b.reshape(-1).astype(np.float32) * np.float32(beta), (channels,)).copy()
    return m


def _float_weight(net, name: str):
    w = net.weights.get(name)
    return np.asarray(w, np.float32) if w is not None and np.asarray(w).dtype == np.float32 else None


# ---- the pass ------------------------------------------------------------------------------------
def eligibility(net, scales: dict) -> dict:
    """{layer name: None if it can be quantized with `scales`, else the reason} for matrix layers."""
    out = {}
    for layer in net.layers:
        if is_matrix(layer):
            m = as_matrix(net, layer)
            out[layer.name] = m if isinstance(m, str) else \
                (None if m.x in scales else f"its input {m.x!r} has no calibrated scale")
    return out


def quantize_network(net, scales: dict, precision: str = "int8", layers=None, exclude=()):
    """A copy of `net` with eligible matrix layers quantized at `precision` ("int8" or "fp8").

    scales: {tensor: int8 scale} from a calibrator or cache. layers: names to quantize (None:
    every eligible one); exclude: names to leave alone.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"quantization precision must be one of {PRECISIONS}, got {precision!r}")
    net = net.copy()
    wanted = set(layers) if layers is not None else None
    for i, layer in enumerate(net.layers):
        if not is_matrix(layer) or layer.name in exclude or (wanted is not None and layer.name not in wanted):
            continue
        m = as_matrix(net, layer)
        if isinstance(m, str) or m.x not in scales:
            continue
        x_scale = float(np.float32(scales[m.x] * QMAX["int8"] / QMAX[precision]))
        net.layers[i] = quantized_layer(net, m, x_scale, precision)
    drop_unused_weights(net)
    return net


def quantized_layer(net, m: Matrix, x_scale: float, precision: str, x_zero_point: int = 0,
                    x_dtype: str | None = None, output: dict | None = None, fused=()) -> Layer:
    """The quantized twin of m.layer; its new weights are added to `net`."""
    fp8 = precision == "fp8"
    wq, w_scale = quantize_weights(m.w, None if fp8 else 0, precision)
    b = None
    if m.b is not None:
        b = m.b.astype(np.float32) if fp8 else quantize_bias(m.b, x_scale, w_scale)
    recipe = dict(x_scale=x_scale, x_zero_point=int(x_zero_point), x_dtype=x_dtype or (FP8 if fp8 else "int8"),
                  w_scale=[float(s) for s in w_scale], w_zero_point=None, w_axis=0, **(output or {}))
    return make_layer(net, m, wq, b, recipe, fused)


def make_layer(net, m: Matrix, wq: np.ndarray, bq, recipe: dict, fused=()) -> Layer:
    """A QLinearConvFused / QGemm layer standing for m.layer, reading new weights wq and bq."""
    name = m.layer.name
    inputs = [m.x, add_weight(net, wq, f"{name}_wq"), add_weight(net, bq, f"{name}_bq") if bq is not None else ""]
    if m.residual:
        inputs.append(m.residual)
    while inputs and not inputs[-1]:
        inputs.pop()
    op = "QLinearConvFused" if m.conv else "QGemm"
    return Layer(name, op, inputs, list(m.layer.outputs), {**m.attrs, **recipe}, DOMAIN,
                 [*(m.layer.fused or [name]), *fused])


def add_weight(net, value: np.ndarray, base: str) -> str:
    name = net._unique(base)
    net.weights[name] = value
    net.tensors[name] = Tensor(name, value.dtype.name, tuple(value.shape))
    return name


def drop_unused_weights(net) -> None:
    """Remove weights (and their tensors) that no layer reads and that are not graph outputs."""
    used = {n for layer in net.layers for n in layer.reads()} | set(net.outputs)
    for name in [n for n in net.weights if n not in used]:
        del net.weights[name]
        net.tensors.pop(name, None)
