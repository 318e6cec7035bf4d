"""Attention (opset 23, with the opset 24 nonpad_kv_seqlen input and opset 25 windows),
RotaryEmbedding (opset 23) and FlexAttention (ai.onnx.preview)."""
from __future__ import annotations

from .. import dims
from ..ops import Info, op
from ..rules import same_as
from ...errors import ShapeError


def _heads(x: Info, num_heads, what: str, name: str):
    """(batch, heads, seq, head_size) of a 4-D input, or of a 3-D (batch, seq, heads*head_size) one."""
    if len(x.shape) == 4:
        return x.shape
    if len(x.shape) != 3:
        raise ShapeError(f"{what}: {name} must be 3-D or 4-D, got shape {x.shape}")
    if not num_heads:
        raise ShapeError(f"{what}: {name} is 3-D, so q_num_heads and kv_num_heads are required")
    hidden = x.shape[2]
    if isinstance(hidden, int) and hidden % num_heads:
        raise ShapeError(f"{what}: {name} hidden size {hidden} is not divisible by {num_heads} heads")
    return x.shape[0], num_heads, x.shape[1], dims.floordiv(hidden, num_heads)


@op("Attention", since=23, is_causal=0, kv_num_heads=None, q_num_heads=None, qk_matmul_output_mode=0,
    scale=None, softcap=0.0, softmax_precision=None, left_window_size=-1, right_window_size=-1)
def attention(q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None, *,
              is_causal, kv_num_heads, q_num_heads, qk_matmul_output_mode, scale, softcap,
              softmax_precision, left_window_size, right_window_size):
    """Y, present_key, present_value, qk_matmul_output."""
    if q.shape is None or k.shape is None or v.shape is None:
        return tuple(Info(q.dtype, None) for _ in range(4))
    what = "Attention"
    b, hq, sq, _ = _heads(q, q_num_heads, what, "Q")
    _, hkv, skv, dk = _heads(k, kv_num_heads, what, "K")
    _, _, _, dv = _heads(v, kv_num_heads, what, "V")
    if isinstance(hq, int) and isinstance(hkv, int) and hq % hkv:
        raise ShapeError(f"{what}: {hq} query heads are not a multiple of {hkv} key/value heads")
    total = skv
    if past_key is not None and past_key.shape is not None:
        total = dims.add(past_key.shape[2], skv)
    y = (b, sq, dims.mul(hq, dv)) if len(q.shape) == 3 else (b, hq, sq, dv)
    return (Info(q.dtype, y), Info(q.dtype, (b, hkv, total, dk)), Info(q.dtype, (b, hkv, total, dv)),
            Info(q.dtype, (b, hq, sq, total)))


@op("RotaryEmbedding", since=23, interleaved=0, num_heads=None, rotary_embedding_dim=0)
def rotary_embedding(x, cos_cache, sin_cache, position_ids=None, *, interleaved, num_heads,
                     rotary_embedding_dim):
    """Same shape as the input (4-D (B, H, S, D) or 3-D (B, S, H*D))."""
    if x.shape is not None and len(x.shape) == 3 and not num_heads:
        raise ShapeError("RotaryEmbedding: a 3-D input needs the num_heads attribute")
    return same_as(x)


@op("FlexAttention", since=1, domain="ai.onnx.preview", prob_mod=None, score_mod=None, scale=None,
    softmax_precision=None)
def flex_attention(q, k, v, *, prob_mod, score_mod, scale, softmax_precision):
    """Y (B, Hq, L, Ev) for Q (B, Hq, L, E), K (B, Hkv, S, E), V (B, Hkv, S, Ev)."""
    if q.shape is None or v.shape is None:
        return Info(v.dtype, None)
    if len(q.shape) != 4 or len(v.shape) != 4:
        raise ShapeError(f"FlexAttention: Q, K and V must be 4-D, got {q.shape} and V {v.shape}")
    hq, hkv = q.shape[1], v.shape[1]
    if isinstance(hq, int) and isinstance(hkv, int) and hq % hkv:
        raise ShapeError(f"FlexAttention: {hq} query heads are not a multiple of {hkv} key/value heads")
    return Info(v.dtype, (*q.shape[:3], v.shape[3]))
