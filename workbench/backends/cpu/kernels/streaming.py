"""NumPy kernels of TensorScatter, LinearAttention and CausalConvWithState (onnx.reference semantics)."""
from __future__ import annotations

import numpy as np

from ..registry import kernel
from .activation import ELEMENTWISE
from .elementwise import widen


@kernel("TensorScatter")
def tensor_scatter(past_cache, update, write_indices=None, *, axis=-2, mode="linear"):
    """The cache with update[b] written along `axis` at write_indices[b], write_indices[b] + 1, ...
    (wrapping around with mode 'circular')."""
    a = axis % past_cache.ndim
    batch, steps = past_cache.shape[0], update.shape[a]
    starts = np.zeros(batch, np.int64) if write_indices is None else np.asarray(write_indices, np.int64)
    positions = starts[:, None] + np.arange(steps)[None, :]
    if mode == "circular":
        positions %= past_cache.shape[a]
    present = past_cache.copy()
    # Batch first, the scattered axis second: rows [b, positions[b]] receive update[b].
    np.moveaxis(present, a, 1)[np.arange(batch)[:, None], positions] = np.moveaxis(update, a, 1)
    return present


# ---------------------------------------------------------------------------------- LinearAttention
def _heads(x: np.ndarray, heads: int) -> np.ndarray:
    """(B, T, H*D) -> (B, T, H, D)."""
    b, t, hd = x.shape
    return x.reshape(b, t, heads, hd // heads)


def _per_head(x: np.ndarray | None, heads: int, width: int) -> np.ndarray | None:
    """decay/beta (B, T, heads*width | heads | 1) -> (B, T, heads or 1, width or 1)."""
    if x is None:
        return None
    b, t, last = x.shape
    return x.reshape(b, t, last // width, width) if last not in (heads, 1) else x.reshape(b, t, last, 1)


@kernel("LinearAttention")
def linear_attention(query, key, value, past_state=None, decay=None, beta=None, *, chunk_size=64,
                     kv_num_heads=None, q_num_heads=None, scale=0.0, update_rule="gated_delta"):
    """Per time step t (state S: (B, Hkv, dk, dv), computed in float32 or wider):
    gated rules decay S *= exp(decay_t); delta rules write v_t <- beta_t (v_t - S^T k_t);
    then S += k_t v_t^T and o_t = scale * q_t S (query heads share their KV head's state)."""
    wq, wk, wv, ws, wd, wb = widen(query, key, value, past_state, decay, beta)
    compute = np.float64 if query.dtype == np.float64 else np.float32
    q, k, v = (_heads(x.astype(compute), h) for x, h in ((wq, q_num_heads), (wk, kv_num_heads), (wv, kv_num_heads)))
    b, t, _, dk = q.shape
    dv, group = v.shape[-1], q_num_heads // kv_num_heads
    gates = _per_head(wd, kv_num_heads, dk)
    betas = _per_head(wb, kv_num_heads, 1)
    state = np.zeros((b, kv_num_heads, dk, dv), compute) if ws is None else ws.astype(compute)
    factor = compute(scale) if scale else compute(1 / np.sqrt(dk))
    out = np.empty((b, t, kv_num_heads, group, dv), compute)
    for i in range(t):  # the recurrence: each step reads the state the previous one wrote
        k_t, v_t = k[:, i], v[:, i]  # (B, Hkv, dk), (B, Hkv, dv)
        if gates is not None:
            state = state * np.exp(gates[:, i].astype(compute))[..., None]
        if betas is not None:
            retrieved = np.einsum("bhdm,bhd->bhm", state, k_t)
            v_t = betas[:, i].astype(compute) * (v_t - retrieved)
        state = state + k_t[..., :, None] * v_t[..., None, :]
        q_t = q[:, i].reshape(b, kv_num_heads, group, dk)
        out[:, i] = factor * np.einsum("bhgd,bhdm->bhgm", q_t, state)
    state_dtype = past_state.dtype if past_state is not None else query.dtype
    return out.reshape(b, t, q_num_heads * dv).astype(query.dtype), state.astype(state_dtype)


# ---------------------------------------------------------------------------------- CausalConvWithState
@kernel("CausalConvWithState")
def causal_conv_with_state(x, weight, bias=None, past_state=None, *, activation="none"):
    """Depthwise conv1d of [past_state, x] (zeros when no state) with weight (C, 1, k), valid padding;
    SiLU after it when asked; the new state is the last k - 1 inputs."""
    wx, ww, wb, wp = widen(x, weight, bias, past_state)
    batch, channels, length = x.shape
    k = weight.shape[-1]
    pad = np.zeros((batch, channels, k - 1), wx.dtype) if wp is None else wp.astype(wx.dtype)
    padded = np.concatenate([pad, wx], axis=2)
    out = np.zeros_like(wx)
    for j in range(k):  # one shifted multiply-add per tap
        out += ww[:, 0, j][None, :, None] * padded[:, :, j:j + length]
    if wb is not None:
        out += wb[None, :, None]
    if activation in ("silu", "swish"):
        out = ELEMENTWISE["Swish"](out, alpha=1.0)
    state = padded[:, :, padded.shape[2] - (k - 1):]
    return out.astype(x.dtype), state.astype(x.dtype)
