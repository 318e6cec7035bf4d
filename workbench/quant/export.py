"""Export a calibrated network as a Q/DQ ONNX model that onnxruntime (or TensorRT) runs.

Each Conv / Gemm / MatMul with a constant weight whose input has a scale gets what workbench's
int8 layer computes, written the standard way:

    x -> QuantizeLinear(s_x, 0) -> DequantizeLinear --\\
    W_int8 (per output channel) -> DequantizeLinear ---> Conv / Gemm / MatMul
    B_int32 (scale s_x * s_w) -> DequantizeLinear ----/

Activations are symmetric int8 per tensor, weights symmetric int8 per output channel (per
tensor below opset 13), exactly as `quantize_network` makes them, so the file reproduces the
engine's arithmetic outside workbench.

    >>> export_qdq(net, cal.scales, "model.qdq.onnx")
"""
from __future__ import annotations

import numpy as np

from ..errors import UnsupportedError
from ..ir import Layer, Tensor
from .numerics import quantize_bias, quantize_weights
from .quantize import add_weight, as_matrix, drop_unused_weights

EXPORTED_OPS = ("Conv", "Gemm", "MatMul")
PER_AXIS_OPSET = 13  # DequantizeLinear's axis attribute arrived in opset 13


def export_qdq(network, scales: dict, path, precision: str = "int8"):
    """Write `network` (as parsed: ONNX ops only) with Q/DQ from `scales` to `path`; returns the ModelProto.

    scales: {tensor: int8 scale}, e.g. calibrator.scales or read_cache(path).
    """
    from ..parsers.onnx_export import save_onnx

    if precision != "int8":
        raise UnsupportedError(f"export_qdq writes int8 Q/DQ models; precision={precision!r} is not supported")
    net = quantized_copy(network, scales)
    return save_onnx(net, path)


def quantized_copy(network, scales: dict):
    """A copy of `network` with QuantizeLinear/DequantizeLinear layers inserted (see module doc)."""
    net = network.copy()
    per_axis = net.opset >= PER_AXIS_OPSET
    activations: dict = {}
    layers = []
    for layer in net.layers:
        m = as_matrix(net, layer) if layer.op in EXPORTED_OPS and layer.domain == "" else None
        if m is None or isinstance(m, str) or m.x not in scales:
            layers.append(layer)
            continue
        x_scale = float(np.float32(scales[m.x]))
        if m.x not in activations:
            activations[m.x] = _fake_quant(net, layers, m.x, x_scale)
        layers.append(_with_qdq(net, layer, layers, activations[m.x], x_scale, per_axis))
    net.layers = layers
    drop_unused_weights(net)
    return net


def _fake_quant(net, layers: list, x: str, scale: float) -> str:
    """Append Q -> DQ of tensor x (int8, symmetric) and return the DQ's output name."""
    s = add_weight(net, np.array(scale, np.float32), f"{x}_scale")
    zp = add_weight(net, np.array(0, np.int8), f"{x}_zero_point")
    q, dq = _layer(net, layers, "QuantizeLinear", [x, s, zp], "int8", f"{x}_q")
    return _layer(net, layers, "DequantizeLinear", [q, s, zp], "float32", f"{x}_dq")[0]


def _layer(net, layers: list, op: str, inputs: list, dtype: str, base: str, attrs=None):
    """Append one layer writing a fresh tensor of `dtype` shaped like inputs[0]; (output, layer)."""
    out = net._unique(base)
    net.tensors[out] = Tensor(out, dtype, net.tensors[inputs[0]].shape)
    layer = Layer(net._unique(f"{base}_node"), op, inputs, [out], dict(attrs or {}))
    layers.append(layer)
    return out, layer


def _with_qdq(net, layer, layers: list, x_dq: str, x_scale: float, per_axis: bool) -> Layer:
    """`layer` reading the fake-quantized input, DQ(int8 weight) and, when it can, DQ(int32 bias)."""
    w_name = layer.inputs[1]
    w = np.asarray(net.weights[w_name], np.float32)
    axis = _channel_axis(layer, w) if per_axis else None
    wq, w_scale = quantize_weights(w, axis, "int8")
    inputs = list(layer.inputs)
    inputs[0] = x_dq
    inputs[1] = _dequantized(net, layers, wq, w_scale, axis, w_name)
    if len(inputs) > 2 and inputs[2] and _bias_quantizable(net, layer, inputs[2], w_scale.size):
        bq = quantize_bias(net.weights[inputs[2]], x_scale, w_scale)
        inputs[2] = _dequantized(net, layers, bq, np.float32(x_scale) * w_scale, 0 if w_scale.size > 1 else None,
                                 inputs[2])
    return Layer(layer.name, layer.op, inputs, list(layer.outputs), dict(layer.attrs), layer.domain,
                 list(layer.fused))


def _dequantized(net, layers: list, q: np.ndarray, scale: np.ndarray, axis, base: str) -> str:
    q_name = add_weight(net, q, f"{base}_quantized")
    s_name = add_weight(net, scale.astype(np.float32) if axis is not None else np.float32(scale.reshape(-1)[0]),
                        f"{base}_scale")
    zp = add_weight(net, np.zeros(scale.shape if axis is not None else (), q.dtype), f"{base}_zero_point")
    out, _ = _layer(net, layers, "DequantizeLinear", [q_name, s_name, zp], "float32", f"{base}_dq",
                    {"axis": axis} if axis is not None else None)
    net.tensors[out].shape = tuple(q.shape)
    return out


def _channel_axis(layer, w: np.ndarray) -> int:
    """The weight axis holding the output channels: Conv 0, Gemm 0 (transB) or 1, MatMul 1."""
    if layer.op == "Gemm":
        return 0 if layer.attrs.get("transB", 0) else 1
    return 1 if layer.op == "MatMul" else 0


def _bias_quantizable(net, layer, name: str, channels: int) -> bool:
    """Only a constant 1-D per-channel bias of a layer that adds it once (Gemm beta == 1) becomes int32."""
    b = net.weights.get(name)
    return (b is not None and np.asarray(b).dtype == np.float32 and np.ndim(b) == 1
            and (np.size(b) == channels or channels == 1) and layer.attrs.get("beta", 1.0) == 1.0)
