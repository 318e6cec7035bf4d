"""Fused ops made by the optimizer (domain "workbench"): a matrix op, its bias and its activation.

    FusedConv(X, W, B?, residual?)  = act(Conv(X, W, B) + residual)     (cuDNN's conv-bias-add-act)
    FusedGemm(A, B, C?)             = act(Gemm(A, B, C))
    FusedMatMul(A, B, bias?)        = act(MatMul(A, B) + bias)          (bias along the last axis)
    FusedAttention(Q, K, V, mask?)  = merge(Softmax(split(Q) split(K)ᵀ ⊙ scale + mask) split(V))
                                      (heads split from / merged into the last axis: BERT's attention)
    FusedLayerNorm(X, scale, bias?, residual?) = LayerNormalization(X + residual, scale, bias)
                                      (the residual connection before a post-LN transformer's norm)

`activation` names a kind of ACTIVATIONS (None: no activation); `activation_alpha` and
`activation_beta` are its parameters. Shape rules delegate to the ONNX op's rule, so the fused op
accepts exactly what the op it stands for accepts.
"""
from __future__ import annotations

from typing import NamedTuple

from ...errors import ShapeError, UnsupportedError
from .. import dims
from ..ops import Info, attributes, op, spec_for
from ..rules import broadcast_of

DOMAIN = "workbench"


class Activation(NamedTuple):
    """How an activation kind runs as an ONNX op: `params` name what alpha and beta become."""

    op: str
    params: tuple = ()
    fixed: dict = {}
    params_are_inputs: bool = False  # Clip (opset >= 11) takes its bounds as inputs


ACTIVATIONS = {
    "Relu": Activation("Relu"),
    "Sigmoid": Activation("Sigmoid"),
    "Tanh": Activation("Tanh"),
    "HardSwish": Activation("HardSwish"),
    "Softplus": Activation("Softplus"),
    "Softsign": Activation("Softsign"),
    "Mish": Activation("Mish"),
    "LeakyRelu": Activation("LeakyRelu", ("alpha",)),
    "Elu": Activation("Elu", ("alpha",)),
    "Celu": Activation("Celu", ("alpha",)),
    "ThresholdedRelu": Activation("ThresholdedRelu", ("alpha",)),
    "HardSigmoid": Activation("HardSigmoid", ("alpha", "beta")),
    "Selu": Activation("Selu", ("alpha", "gamma")),
    "Clip": Activation("Clip", ("min", "max"), params_are_inputs=True),  # ReLU6 is Clip(0, 6)
    "Gelu": Activation("Gelu", fixed={"approximate": "none"}),
    "GeluTanh": Activation("Gelu", fixed={"approximate": "tanh"}),
}

ACTIVATION_ATTRS = dict(activation=None, activation_alpha=None, activation_beta=None)
CONV_ATTRS = dict(auto_pad="NOTSET", dilations=None, group=1, kernel_shape=None, pads=None, strides=None)
GEMM_ATTRS = dict(alpha=1.0, beta=1.0, transA=0, transB=0)
# fused op -> (the ONNX op it extends, that op's attributes)
BASE = {"FusedConv": ("Conv", CONV_ATTRS), "FusedGemm": ("Gemm", GEMM_ATTRS), "FusedMatMul": ("MatMul", {})}


def base_attributes(fused_op: str, attrs: dict) -> dict:
    """The base ONNX op's attributes (its defaults filled) out of a fused layer's attributes."""
    base, names = BASE[fused_op]
    spec = _spec(base, fused_op)
    return attributes(spec, {k: attrs[k] for k in names}, f"{fused_op} (as {base})")


def _spec(base: str, fused_op: str):
    spec = spec_for(base)
    if spec is None:
        raise UnsupportedError(f"{fused_op} needs the {base} op, which is not registered")
    return spec


def _check_activation(activation) -> None:
    if activation is not None and activation not in ACTIVATIONS:
        raise UnsupportedError(f"fused activation {activation!r} is unknown; known: {sorted(ACTIVATIONS)}")


def _base_rule(fused_op: str, inputs: list, attrs: dict):
    _check_activation(attrs["activation"])
    out = _spec(BASE[fused_op][0], fused_op).shape_rule(*inputs, **base_attributes(fused_op, attrs))
    return out[0] if isinstance(out, (tuple, list)) and not isinstance(out, Info) else out


@op("FusedConv", since=1, domain=DOMAIN, **CONV_ATTRS, **ACTIVATION_ATTRS)
def fused_conv(x, w, b=None, residual=None, **attrs):
    """Conv, plus a residual of the output's shape, then the activation."""
    out = _base_rule("FusedConv", [x, w, b], attrs)
    return out if residual is None else broadcast_of(out, residual)


@op("FusedGemm", since=1, domain=DOMAIN, **GEMM_ATTRS, **ACTIVATION_ATTRS)
def fused_gemm(a, b, c=None, **attrs):
    """Gemm, then the activation."""
    return _base_rule("FusedGemm", [a, b, c], attrs)


@op("FusedMatMul", since=1, domain=DOMAIN, **ACTIVATION_ATTRS)
def fused_matmul(a, b, bias=None, **attrs):
    """MatMul plus a bias broadcast along the last axis, then the activation."""
    out = _base_rule("FusedMatMul", [a, b], attrs)
    return out if bias is None else broadcast_of(out, bias)


ATTENTION_ATTRS = dict(num_heads=None, scale=None, scale_op="Mul", packed=None)


def attention_columns(packed, widths: list) -> list:
    """(first column, width) of Q, K and V in their inputs: the whole of each, or with `packed`
    ([wq, wk, wv], passes/pack_qkv.py) consecutive column ranges of one QKV tensor."""
    if not packed:
        return [(0, w) for w in widths]
    return [(sum(packed[:i]), int(packed[i])) for i in range(3)]


@op("FusedAttention", since=1, domain=DOMAIN, **ATTENTION_ATTRS)
def fused_attention(q, k, v, mask=None, *, num_heads, scale, scale_op, packed):
    """Multi-head attention on (B, S, H*D) projections; the output is (B, Sq, H*Dv).

    Per head: P = Softmax(Q Kᵀ ⊙ scale + mask) over the keys, O = P V, where ⊙ is `scale_op`
    ("Mul" or "Div") with the constant `scale` (None: no scaling) and the optional additive mask
    broadcasts against the scores (B, H, Sq, Skv), exactly as the unfused ONNX ops compute it.
    `packed` ([wq, wk, wv], or None): Q, K and V are consecutive column ranges of each input (one
    QKV tensor given three times).
    """
    if scale_op not in ("Mul", "Div"):
        raise ShapeError(f"FusedAttention: scale_op must be 'Mul' or 'Div', got {scale_op!r}")
    if not isinstance(num_heads, int) or num_heads < 1:
        raise ShapeError(f"FusedAttention: num_heads must be a positive int, got {num_heads!r}")
    if packed is not None and (len(packed) != 3 or not all(isinstance(w, int) and w > 0 for w in packed)):
        raise ShapeError(f"FusedAttention: packed must be three positive widths [wq, wk, wv], got {packed!r}")
    if q.shape is None or k.shape is None or v.shape is None:
        return Info(q.dtype, None)
    if not len(q.shape) == len(k.shape) == len(v.shape) == 3:
        raise ShapeError(f"FusedAttention: Q, K and V must be 3-D (B, S, H*D), got {q.shape}, {k.shape}, {v.shape}")
    if packed is not None and any(isinstance(x.shape[2], int) and x.shape[2] != sum(packed) for x in (q, k, v)):
        raise ShapeError(f"FusedAttention: packed widths {packed} do not add up to the inputs' last dims "
                         f"({q.shape[2]}, {k.shape[2]}, {v.shape[2]})")
    widths = [w for _, w in attention_columns(packed, [q.shape[2], k.shape[2], v.shape[2]])]
    for name, width in zip("QKV", widths):
        if isinstance(width, int) and width % num_heads:
            raise ShapeError(f"FusedAttention: {name}'s width {width} is not a multiple of num_heads={num_heads}")
    if isinstance(widths[0], int) and isinstance(widths[1], int) and widths[0] != widths[1]:
        raise ShapeError(f"FusedAttention: Q and K widths differ ({widths[0]} vs {widths[1]})")
    batch = dims.broadcast((q.shape[0],), (k.shape[0],), (v.shape[0],))[0]
    return Info(q.dtype, (batch, q.shape[1], widths[2]))


LAYERNORM_ATTRS = dict(axis=-1, epsilon=1e-5, stash_type=1)


@op("FusedLayerNorm", since=1, domain=DOMAIN, **LAYERNORM_ATTRS)
def fused_layer_norm(x, scale, bias=None, residual=None, **attrs):
    """LayerNormalization of X + residual (same shape); only its first output (Y)."""
    if residual is not None and x.shape is not None and residual.shape is not None and \
            len(x.shape) == len(residual.shape) and broadcast_of(x, residual).shape != x.shape:
        raise ShapeError(f"FusedLayerNorm: the residual {residual.shape} must not broadcast X {x.shape}")
    out = _spec("LayerNormalization", "FusedLayerNorm").shape_rule(x, scale, bias, **attrs)
    return out[0] if isinstance(out, (tuple, list)) else out
