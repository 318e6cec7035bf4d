"""Attention, RotaryEmbedding and FlexAttention kernels, following onnx.reference's semantics exactly (masks,
causal/window frontiers aligned bottom-right, fully-masked rows giving 0), computed in float32 for
float16/bfloat16 inputs."""
from __future__ import annotations

import numpy as np

from ....errors import UnsupportedError
from ....ir.onnx_dtypes import numpy_dtype
from ..registry import kernel
from ..windowing import compute_dtype

_NEG_INF = -np.inf


def _to_heads(x: np.ndarray, num_heads) -> np.ndarray:
    """(B, S, H*D) -> (B, H, S, D); 4-D inputs are returned as they are."""
    if x.ndim == 4:
        return x
    b, s, hidden = x.shape
    return x.reshape(b, s, num_heads, hidden // num_heads).transpose(0, 2, 1, 3)


def _frontier(sq: int, skv: int, offset) -> np.ndarray:
    """i + offset - j for query i, key j: (Sq, Skv), or (B, 1, Sq, Skv) for per-batch offsets."""
    diff = np.arange(sq)[:, None] - np.arange(skv)[None, :]
    if np.ndim(offset):
        return np.reshape(offset, (-1, 1, 1, 1)) + diff
    return diff + int(offset)


def _as_bias(allowed: np.ndarray, dtype) -> np.ndarray:
    return np.where(allowed, dtype.type(0), dtype.type(_NEG_INF))


def _mask_bias(attn_mask, skv: int, dtype):
    """The additive form of attn_mask, padded with "masked" up to Skv keys."""
    if attn_mask is None:
        return None
    pad = skv - attn_mask.shape[-1]
    if pad > 0:
        fill = False if attn_mask.dtype == np.bool_ else _NEG_INF
        attn_mask = np.pad(attn_mask, [(0, 0)] * (attn_mask.ndim - 1) + [(0, pad)], constant_values=fill)
    if attn_mask.dtype == np.bool_:
        return _as_bias(attn_mask, dtype)
    return attn_mask.astype(dtype)


def _attention_bias(attn_mask, sq, skv, offset, nonpad_kv_seqlen, is_causal, left, right, dtype):
    """Additive bias (0 or -inf, plus a float mask) broadcastable to (B, H, Sq, Skv).

    `offset` places query 0 among the keys (causal and window frontiers are bottom-right aligned).
    """
    bias = np.zeros((sq, skv), dtype=dtype)
    mask = _mask_bias(attn_mask, skv, dtype)
    if mask is not None:
        bias = bias + mask
    if is_causal:
        bias = bias + _as_bias(_frontier(sq, skv, offset) >= 0, dtype)
    if left >= 0 or right >= 0:
        diff = _frontier(sq, skv, offset)
        allowed = np.ones(diff.shape, dtype=bool)
        if left >= 0:
            allowed &= diff <= left
        if right >= 0:
            allowed &= -diff <= right
        bias = bias + _as_bias(allowed, dtype)
    if nonpad_kv_seqlen is not None:
        valid = np.arange(skv)[None, :] < nonpad_kv_seqlen.reshape(-1, 1)
        bias = bias + _as_bias(valid, dtype).reshape(-1, 1, 1, skv)
    return bias


def _softmax(x: np.ndarray) -> np.ndarray:
    """Softmax over the last axis; a row that is all -inf gives zeros (not NaN)."""
    x_max = np.max(x, axis=-1, keepdims=True)
    safe_max = np.where(np.isneginf(x_max), x.dtype.type(0), x_max)
    e = np.exp(x - safe_max)
    s = e.sum(axis=-1, keepdims=True)
    return e / np.where(s == 0, x.dtype.type(1), s)


def _rounder(dtype, ct):
    """Rounds float32 intermediates to a float16/bfloat16 input's dtype (each op of the ONNX
    function body yields that dtype), so low-precision results match the reference bit for bit."""
    if np.dtype(dtype) == ct:
        return lambda a: a
    return lambda a: a.astype(dtype).astype(ct)


@kernel("Attention")
def attention(q, k, v, attn_mask=None, past_key=None, past_value=None, nonpad_kv_seqlen=None, *,
              is_causal, kv_num_heads, q_num_heads, qk_matmul_output_mode, scale, softcap,
              softmax_precision, left_window_size, right_window_size):
    """ONNX Attention: Y, present_key, present_value, qk_matmul_output."""
    out_dtype = q.dtype
    qh, kh, vh = _to_heads(q, q_num_heads), _to_heads(k, kv_num_heads), _to_heads(v, kv_num_heads)
    present_k = kh if past_key is None else np.concatenate([past_key, kh], axis=2)
    present_v = vh if past_value is None else np.concatenate([past_value, vh], axis=2)
    ct = compute_dtype(out_dtype)
    b, hq, sq, d = qh.shape
    hkv, skv = present_k.shape[1], present_k.shape[2]
    # queries follow the past cache, or (external cache) end at each batch's last valid key
    offset = 0 if past_key is None else past_key.shape[2]
    if past_key is None and nonpad_kv_seqlen is not None:
        offset = nonpad_kv_seqlen.reshape(-1).astype(np.int64) - sq
    bias = _attention_bias(attn_mask, sq, skv, offset, nonpad_kv_seqlen, is_causal,
                           left_window_size, right_window_size, ct)
    kk, vv = present_k.astype(ct), present_v.astype(ct)
    if hq != hkv:  # grouped-query attention: each KV head serves hq/hkv consecutive query heads
        kk, vv = np.repeat(kk, hq // hkv, axis=1), np.repeat(vv, hq // hkv, axis=1)
    rnd = _rounder(out_dtype, ct)
    # scale is split as sqrt(scale) on Q and on K, as the ONNX function body does
    root = rnd(np.asarray(np.sqrt(1 / np.sqrt(d) if scale is None else scale), dtype=ct))
    qk = rnd(np.matmul(rnd(qh.astype(ct) * root), rnd(kk.swapaxes(-1, -2) * root)))
    if softcap and softcap > 0:
        cap = ct.type(softcap)
        qk = rnd(rnd(np.tanh(rnd(qk / cap))) * cap)
    logits = rnd(qk + bias)
    # softmax in softmax_precision if given, else in the input's own dtype (as the spec's body)
    sm_dtype = numpy_dtype(softmax_precision) if softmax_precision else out_dtype
    probs = _softmax(logits.astype(sm_dtype))
    fully_masked = np.isneginf(np.max(bias, axis=-1, keepdims=True))
    probs = np.where(fully_masked, probs.dtype.type(0), probs)
    exposed = {0: qk, 1: qk, 2: logits, 3: probs}[qk_matmul_output_mode]
    y = np.matmul(probs.astype(out_dtype).astype(ct, copy=False), vv)
    if q.ndim == 3:
        y = y.transpose(0, 2, 1, 3).reshape(b, sq, -1)
    return (y.astype(out_dtype), present_k.astype(out_dtype, copy=False),
            present_v.astype(out_dtype, copy=False), exposed.astype(out_dtype))


@kernel("RotaryEmbedding")
def rotary_embedding(x, cos_cache, sin_cache, position_ids=None, *, interleaved, num_heads,
                     rotary_embedding_dim):
    """ONNX RotaryEmbedding: rotate (the first rotary_embedding_dim of) each head's features."""
    ct = compute_dtype(x.dtype)
    if x.ndim == 4:  # (B, H, S, D) -> (B, S, H, D)
        xs = x.transpose(0, 2, 1, 3)
    else:
        b, s, hidden = x.shape
        xs = x.reshape(b, s, num_heads, hidden // num_heads)
    xs = xs.astype(ct)
    rot = rotary_embedding_dim or xs.shape[-1]
    if position_ids is not None:
        cos_cache, sin_cache = cos_cache[position_ids], sin_cache[position_ids]
    cos = cos_cache.astype(ct)[:, :, None, :]  # (B, S, 1, rot/2)
    sin = sin_cache.astype(ct)[:, :, None, :]
    part = xs[..., :rot]
    x1, x2 = (part[..., 0::2], part[..., 1::2]) if interleaved else np.split(part, 2, axis=-1)
    real, imag = cos * x1 - sin * x2, sin * x1 + cos * x2
    rotated = np.stack([real, imag], axis=-1).reshape(part.shape) if interleaved else \
        np.concatenate([real, imag], axis=-1)
    y = np.concatenate([rotated, xs[..., rot:]], axis=-1)
    y = y.transpose(0, 2, 1, 3) if x.ndim == 4 else y.reshape(x.shape)
    return y.astype(x.dtype)


@kernel("FlexAttention", domain="ai.onnx.preview")
def flex_attention(q, k, v, *, prob_mod=None, score_mod=None, scale=None, softmax_precision=None):
    """softmax(Q K^T * scale) V with grouped-query heads; scores are formed in Q's dtype, softmax and
    the product with V in softmax_precision (default: float32 for 16-bit inputs, else Q's dtype)."""
    if score_mod is not None or prob_mod is not None:
        raise UnsupportedError("FlexAttention: score_mod/prob_mod subgraphs are not supported")
    ct = compute_dtype(q.dtype)
    rnd = _rounder(q.dtype, ct)
    hq, hkv = q.shape[1], k.shape[1]
    if hq != hkv:
        k, v = np.repeat(k, hq // hkv, axis=1), np.repeat(v, hq // hkv, axis=1)
    root = rnd(np.asarray(np.sqrt(np.float32(1 / np.sqrt(q.shape[-1]) if scale is None else scale)), ct))
    scores = rnd(np.matmul(rnd(q.astype(ct) * root), rnd(k.astype(ct) * root).swapaxes(-1, -2)))
    sm_dtype = numpy_dtype(softmax_precision) if softmax_precision else ct
    probs = _softmax(scores.astype(sm_dtype))
    return np.matmul(probs, v.astype(sm_dtype)).astype(v.dtype)
