import ml_dtypes
import numpy as np
import pytest

from tests.oracle import check, ours, rand, reference


def _qkv(b=2, hq=4, hkv=2, sq=3, skv=5, d=8, dv=6):
    return rand(b, hq, sq, d), rand(b, hkv, skv, d), rand(b, hkv, skv, dv)


@pytest.mark.parametrize("attrs", [{}, dict(is_causal=1), dict(scale=0.3), dict(softcap=2.0),
                                   dict(qk_matmul_output_mode=1, softcap=1.5), dict(qk_matmul_output_mode=2),
                                   dict(qk_matmul_output_mode=3, is_causal=1)])
@pytest.mark.parametrize("heads", [(4, 4), (4, 2), (3, 1)])
def test_attention_4d(attrs, heads):
    q, k, v = _qkv(hq=heads[0], hkv=heads[1])
    mask = rand(3, 5)
    check("Attention", [q, k, v, mask], attrs, n_out=4, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mask_shape", [(3, 5), (4, 3, 5), (2, 4, 3, 5), (2, 1, 3, 3), (5,)])
@pytest.mark.parametrize("boolean", [False, True])
@pytest.mark.parametrize("causal", [0, 1])
def test_attention_masks_and_cache(mask_shape, boolean, causal):
    if causal and len(mask_shape) == 1:
        pytest.skip("onnx.reference (opset 23) cannot add its causal bias to a rank-1 mask")
    q, k, v = _qkv(skv=3)
    past_k, past_v = rand(2, 2, 2, 8), rand(2, 2, 2, 6)
    mask = rand(*mask_shape) > -1.0 if boolean else rand(*mask_shape)
    check("Attention", [q, k, v, mask, past_k, past_v], dict(is_causal=causal), n_out=4, rtol=1e-4, atol=1e-5)


def test_attention_3d_inputs():
    q, k, v = rand(2, 3, 16), rand(2, 5, 8), rand(2, 5, 12)
    check("Attention", [q, k, v], dict(q_num_heads=4, kv_num_heads=2, is_causal=1), n_out=4, rtol=1e-4, atol=1e-5)


def test_attention_fully_masked_rows_give_zeros():
    q, k, v = _qkv()
    mask = np.ones((3, 5), bool)
    mask[1] = False
    y, _, _, probs = ours("Attention", [q, k, v, mask], dict(qk_matmul_output_mode=3))
    assert not np.any(y[:, :, 1]) and not np.any(probs[:, :, 1])
    check("Attention", [q, k, v, mask], dict(qk_matmul_output_mode=3), n_out=4, rtol=1e-4, atol=1e-5)


def test_attention_opset24_nonpad_kv_seqlen():
    q, k, v = _qkv(sq=2, skv=6)
    lens = np.array([4, 6], np.int64)
    for causal in (0, 1):
        check("Attention", [q, k, v, None, None, None, lens], dict(is_causal=causal), n_out=1, rtol=1e-4,
              atol=1e-5, opset=24)


@pytest.mark.parametrize("left, right", [(1, -1), (2, 0), (-1, 1), (1, 2)])
def test_attention_opset25_windows(left, right):
    q, k, v = _qkv(sq=5, skv=5)
    check("Attention", [q, k, v], dict(left_window_size=left, right_window_size=right), n_out=1,
          rtol=1e-4, atol=1e-5, opset=25)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_attention_half_inputs_round_like_the_function_body(dtype):
    q, k, v = (a.astype(dtype) for a in _qkv())
    want = reference("Attention", [q, k, v], dict(is_causal=1), n_out=1)[0]
    got = ours("Attention", [q, k, v], dict(is_causal=1))[0]
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got.astype(np.float32), want.astype(np.float32), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("attrs", [{}, dict(interleaved=1), dict(rotary_embedding_dim=4),
                                   dict(interleaved=1, rotary_embedding_dim=4)])
@pytest.mark.parametrize("with_positions", [True, False])
def test_rotary_embedding_4d(attrs, with_positions):
    x = rand(2, 3, 4, 8)  # (B, H, S, D)
    rot = attrs.get("rotary_embedding_dim", 8)
    if with_positions:
        cos, sin, pos = rand(10, rot // 2), rand(10, rot // 2), np.array([[0, 2, 4, 6], [1, 3, 5, 7]], np.int64)
        inputs = [x, cos, sin, pos]
    else:
        inputs = [x, rand(2, 4, rot // 2), rand(2, 4, rot // 2)]
    check("RotaryEmbedding", inputs, attrs, rtol=1e-5, atol=1e-6)


def test_rotary_embedding_3d_and_bfloat16():
    x, cos, sin = rand(2, 4, 24), rand(2, 4, 3), rand(2, 4, 3)
    check("RotaryEmbedding", [x, cos, sin], dict(num_heads=4), rtol=1e-5, atol=1e-6)
    got = ours("RotaryEmbedding", [x.astype(ml_dtypes.bfloat16), cos, sin], dict(num_heads=4))[0]
    want = ours("RotaryEmbedding", [x.astype(ml_dtypes.bfloat16).astype(np.float32), cos, sin], dict(num_heads=4))[0]
    np.testing.assert_array_equal(got, want.astype(ml_dtypes.bfloat16))


@pytest.mark.parametrize("heads", [(4, 4), (4, 2)])
@pytest.mark.parametrize("scale", [None, 0.3])
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-10), ("float16", 2e-3)])
def test_flex_attention(heads, scale, dtype, tol):
    hq, hkv = heads
    ins = [rand(2, hq, 5, 8, dtype=dtype), rand(2, hkv, 6, 8, dtype=dtype), rand(2, hkv, 6, 3, dtype=dtype)]
    attrs = {} if scale is None else {"scale": scale}
    (want,) = reference("FlexAttention", ins, attrs, opset=1, domain="ai.onnx.preview")
    (got,) = ours("FlexAttention", ins, attrs, domain="ai.onnx.preview")
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=tol, atol=tol)
