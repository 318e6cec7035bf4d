"""Cost model for inspection: floating-point operations and bytes moved per layer, from shapes.

A multiply-add counts as 2 FLOPs. Data-movement ops (reshape, transpose, gather...) count 0 FLOPs
but move bytes; any op not listed counts one FLOP per output element (the elementwise default).
"""
from __future__ import annotations

import math

from ..dtypes import itemsize

MOVEMENT = {"Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather",
            "GatherElements", "GatherND", "ScatterND", "ScatterElements", "Expand", "Tile", "Pad", "Identity",
            "Cast", "CastLike", "Shape", "Size", "ConstantOfShape", "DepthToSpace", "SpaceToDepth", "Resize",
            "Upsample", "Dropout", "QuantizeLinear", "DequantizeLinear", "Range", "NonZero", "OneHot", "Compress",
            "EyeLike", "Trilu", "Where"}
# FLOPs per input element of ops that read their whole input a few times.
PER_INPUT = {"Softmax": 5, "LogSoftmax": 5, "LayerNormalization": 8, "GroupNormalization": 8,
             "InstanceNormalization": 8, "BatchNormalization": 2, "GlobalAveragePool": 1, "GlobalMaxPool": 1,
             "ReduceMean": 1, "ReduceSum": 1, "ReduceMax": 1, "ReduceMin": 1, "ReduceProd": 1, "ReduceL2": 2,
             "ReduceSumSquare": 2, "ReduceLogSumExp": 3, "ArgMax": 1, "ArgMin": 1, "TopK": 1,
             "LpNormalization": 3, "CumSum": 1}


def numel(shape) -> int | None:
    if shape is None or not all(isinstance(d, int) for d in shape):
        return None
    return math.prod(shape)


def _matmul(ins, outs, attrs):
    k = ins[0][-1] if ins[0] else 1
    return 2 * numel(outs[0]) * k


def _gemm(ins, outs, attrs):
    k = ins[0][0] if attrs.get("transA") else ins[0][1]
    bias = numel(outs[0]) if len(ins) > 2 and ins[2] is not None else 0
    return 2 * numel(outs[0]) * k + bias


def _conv(ins, outs, attrs):
    w = ins[1]  # (out_ch, in_ch / group, *kernel): each output element reads in_ch/group * kernel taps
    bias = numel(outs[0]) if len(ins) > 2 and ins[2] is not None else 0
    return 2 * numel(outs[0]) * math.prod(w[1:]) + bias


def _conv_transpose(ins, outs, attrs):
    w = ins[1]  # (in_ch, out_ch / group, *kernel): each input element scatters into out_ch/group * kernel
    return 2 * numel(ins[0]) * math.prod(w[1:])


def _pool(ins, outs, attrs):
    return numel(outs[0]) * math.prod(attrs.get("kernel_shape") or [1])


RULES = {"MatMul": _matmul, "FusedMatMul": _matmul, "Gemm": _gemm, "FusedGemm": _gemm, "Conv": _conv,
         "FusedConv": _conv, "ConvTranspose": _conv_transpose, "MaxPool": _pool, "AveragePool": _pool,
         "LpPool": _pool}


def layer_flops(layer, in_shapes: list, out_shapes: list):
    """FLOPs of one layer at concrete shapes, or None when a shape it needs is unknown."""
    if layer.op in MOVEMENT:
        return 0
    needed = [s for s in (*in_shapes[:3], *out_shapes[:1]) if s is not None]
    if any(numel(s) is None for s in needed) or not out_shapes or out_shapes[0] is None:
        return None
    try:
        if layer.op in RULES:
            return int(RULES[layer.op](in_shapes, out_shapes, layer.attrs))
        if layer.op in PER_INPUT and in_shapes and in_shapes[0] is not None:
            return PER_INPUT[layer.op] * numel(in_shapes[0])
        return sum(numel(s) or 0 for s in out_shapes if s is not None)
    except (IndexError, TypeError):
        return None


def tensor_nbytes(shape, dtype: str) -> int | None:
    n = numel(shape)
    return None if n is None else n * itemsize(dtype)
