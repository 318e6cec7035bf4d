"""Shape rules of ops that carry state from one decode step to the next: TensorScatter (KV-cache
writes), LinearAttention (a recurrent attention state) and CausalConvWithState (a conv window)."""
from __future__ import annotations

from .. import dims
from ...errors import ShapeError
from ..ops import Info, op

UPDATE_RULES = ("linear", "gated", "delta", "gated_delta")
SCATTER_MODES = ("linear", "circular")
CONV_ACTIVATIONS = ("none", "silu", "swish")


@op("TensorScatter", since=24, axis=-2, mode="linear")
def tensor_scatter(past_cache, update, write_indices=None, *, axis, mode):
    """present_cache, like past_cache: `update` written along `axis` from each batch entry's index."""
    if mode not in SCATTER_MODES:
        raise ShapeError(f"TensorScatter: mode must be one of {SCATTER_MODES}, got {mode!r}")
    if past_cache.shape is not None and update.shape is not None and len(past_cache.shape) != len(update.shape):
        raise ShapeError(f"TensorScatter: update of shape {update.shape} does not match the cache's rank "
                         f"({past_cache.shape})")
    return Info(past_cache.dtype, past_cache.shape)


def _head_dim(size, heads: int, what: str):
    if isinstance(size, int) and size % heads:
        raise ShapeError(f"LinearAttention: {what}'s last dim {size} is not divisible by {heads} heads")
    return dims.floordiv(size, heads)


@op("LinearAttention", since=27, chunk_size=64, kv_num_heads=None, q_num_heads=None, scale=0.0,
    update_rule="gated_delta")
def linear_attention(query, key, value, past_state=None, decay=None, beta=None, *, chunk_size, kv_num_heads,
                     q_num_heads, scale, update_rule):
    """(output (B, T, Hq*dv), present_state (B, Hkv, dk, dv)); Q, K, V are (B, T, heads*head_dim)."""
    if update_rule not in UPDATE_RULES:
        raise ShapeError(f"LinearAttention: update_rule must be one of {UPDATE_RULES}, got {update_rule!r}")
    if not q_num_heads or not kv_num_heads or q_num_heads % kv_num_heads:
        raise ShapeError(f"LinearAttention: q_num_heads ({q_num_heads}) must be a positive multiple of "
                         f"kv_num_heads ({kv_num_heads})")
    state_dtype = past_state.dtype if past_state is not None else query.dtype
    if query.shape is None or value.shape is None:
        return Info(query.dtype, None), Info(state_dtype, None)
    b, t, qd = query.shape
    dk, dv = _head_dim(qd, q_num_heads, "query"), _head_dim(value.shape[-1], kv_num_heads, "value")
    return (Info(query.dtype, (b, t, dims.mul(q_num_heads, dv))),
            Info(state_dtype, (b, kv_num_heads, dk, dv)))


@op("CausalConvWithState", since=27, activation="none")
def causal_conv_with_state(x, weight, bias=None, past_state=None, *, activation):
    """(output (B, C, L), present_state (B, C, k-1)): a depthwise causal conv1d over [past_state, x]."""
    if activation not in CONV_ACTIVATIONS:
        raise ShapeError(f"CausalConvWithState: activation must be one of {CONV_ACTIVATIONS}, got {activation!r}")
    if x.shape is None:
        return Info(x.dtype, None), Info(x.dtype, None)
    k = weight.shape[-1] if weight.shape is not None else dims.fresh("k")
    return Info(x.dtype, x.shape), Info(x.dtype, (*x.shape[:2], dims.sub(k, 1)))
