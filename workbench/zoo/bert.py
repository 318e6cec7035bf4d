"""A BERT-style encoder written the way torch's legacy (TorchScript) exporter writes it.

The graph is deliberately unfused, as exported from PyTorch at opsets < 17:
LayerNorm as ReduceMean/Sub/Pow/ReduceMean/Add/Sqrt/Div/Mul/Add, GELU as the
Erf pattern, linear layers as MatMul + Add(bias, .), attention reshapes whose
targets come from Shape -> Gather -> Unsqueeze -> Concat chains (dynamic
batch), and the attention mask turned into an additive bias. That gives the
fusion passes the same work a real exported transformer gives them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from workbench.errors import ConfigError
from workbench.zoo._graph import GraphWriter

_LN_EPS = 1e-12
_MASK_VALUE = -10000.0


def _layer_norm(g: GraphWriter, x: str, hidden: int) -> str:
    """LayerNorm over the last axis, decomposed as torch exports it below opset 17."""
    mean = g.reduce_mean(x, [-1])
    centred = g.node("Sub", [x, mean])
    var = g.reduce_mean(g.node("Pow", [centred, g.constant(2.0, "float32")]), [-1])
    std = g.node("Sqrt", [g.node("Add", [var, g.constant(_LN_EPS, "float32")])])
    normed = g.node("Div", [centred, std])
    gamma = g.uniform("ln_gamma", (hidden,), 0.8, 1.2)
    beta = g.normal("ln_beta", (hidden,), 0.05)
    return g.node("Add", [g.node("Mul", [normed, gamma]), beta])


def _linear(g: GraphWriter, x: str, cin: int, cout: int) -> str:
    """nn.Linear on 3-D input: MatMul with the pre-transposed weight, then Add(bias, .)."""
    w = g.normal("linear_w", (cin, cout), np.sqrt(1.0 / cin))
    b = g.normal("linear_b", (cout,), 0.02)
    return g.node("Add", [b, g.node("MatMul", [x, w])])


def _gelu(g: GraphWriter, x: str) -> str:
    """x * 0.5 * (1 + erf(x / sqrt 2)), node for node as torch exports nn.GELU()."""
    erf = g.node("Erf", [g.node("Div", [x, g.constant(np.sqrt(2.0), "float32")])])
    y = g.node("Mul", [x, g.node("Add", [erf, g.constant(1.0, "float32")])])
    return g.node("Mul", [y, g.constant(0.5, "float32")])


def _dims(g: GraphWriter, x: str, axes: tuple[int, ...]) -> list[str]:
    """1-D int64 tensors holding x.shape[axis], through Shape -> Gather -> Unsqueeze."""
    shape = g.node("Shape", [x])
    return [g.unsqueeze(g.node("Gather", [shape, g.constant(a)], axis=0), [0]) for a in axes]


def _reshape(g: GraphWriter, x: str, tail: list[int]) -> str:
    """Reshape x to (x.shape[0], x.shape[1], *tail), the target computed at run time."""
    target = g.node("Concat", [*_dims(g, x, (0, 1)), *(g.constant([t]) for t in tail)], axis=0)
    return g.node("Reshape", [x, target])


def _attention(g: GraphWriter, h: str, bias: str, hidden: int, heads: int) -> str:
    """Multi-head self-attention with the additive mask `bias`, then the output projection."""
    d = hidden // heads

    def split_heads(x: str, perm: list[int]) -> str:
        return g.node("Transpose", [_reshape(g, x, [heads, d])], perm=perm)

    q = split_heads(_linear(g, h, hidden, hidden), [0, 2, 1, 3])
    # Key comes out already transposed for q @ k^T: torch folds the two permutes into one.
    k = split_heads(_linear(g, h, hidden, hidden), [0, 2, 3, 1])
    v = split_heads(_linear(g, h, hidden, hidden), [0, 2, 1, 3])
    scores = g.node("Div", [g.node("MatMul", [q, k]), g.constant(np.sqrt(d), "float32")])
    probs = g.node("Softmax", [g.node("Add", [scores, bias])], axis=-1)
    ctx = g.node("Transpose", [g.node("MatMul", [probs, v])], perm=[0, 2, 1, 3])
    return _linear(g, _reshape(g, ctx, [hidden]), hidden, hidden)


def _encoder_layer(g: GraphWriter, h: str, bias: str, hidden: int, heads: int, inner: int) -> str:
    """Post-LN transformer layer: attention + residual + LN, GELU FFN + residual + LN."""
    h = _layer_norm(g, g.node("Add", [_attention(g, h, bias, hidden, heads), h]), hidden)
    ffn = _linear(g, _gelu(g, _linear(g, h, hidden, inner)), inner, hidden)
    return _layer_norm(g, g.node("Add", [ffn, h]), hidden)


def _embeddings(g: GraphWriter, vocab: int, hidden: int, seq: int) -> str:
    """Word + token-type + position embeddings, then LayerNorm."""
    max_pos = max(512, seq)
    word = g.node("Gather", [g.normal("word_emb", (vocab, hidden), 0.02), "input_ids"], axis=0)
    # Position ids are a buffer sliced to the input's length, as HF BERT exports it.
    seq_len = _dims(g, "input_ids", (1,))[0]
    positions = g.node("Slice", [g.weight("position_ids", np.arange(max_pos)[None]),
                                 g.constant([0]), seq_len, g.constant([1])])
    pos = g.node("Gather", [g.normal("pos_emb", (max_pos, hidden), 0.02), positions], axis=0)
    types = g.weight("token_type_ids", np.zeros((1, seq), np.int64))
    tok = g.node("Gather", [g.normal("type_emb", (2, hidden), 0.02), types], axis=0)
    return _layer_norm(g, g.node("Add", [g.node("Add", [word, tok]), pos]), hidden)


def _mask_bias(g: GraphWriter) -> str:
    """attention_mask (b, s) int64 -> additive bias (b, 1, 1, s): 0 to keep, -10000 to drop."""
    mask = g.node("Cast", [g.unsqueeze(g.unsqueeze("attention_mask", [1]), [2])], to=1)
    flipped = g.node("Sub", [g.constant(1.0, "float32"), mask])
    return g.node("Mul", [flipped, g.constant(_MASK_VALUE, "float32")])


def bert(path, layers: int = 12, hidden: int = 768, heads: int = 12, seq: int = 128,
         vocab: int = 30522, batch="batch", seed: int = 0, opset: int = 17) -> Path:
    """Write a BERT-style encoder with random weights to `path` and return the path.

    Inputs input_ids and attention_mask, int64 (batch, seq); outputs
    last_hidden_state (batch, seq, hidden) and pooler_output (batch, hidden).
    Example: bert("/tmp/bert_tiny.onnx", layers=2, hidden=128, heads=4)
    """
    if hidden % heads:
        raise ConfigError(f"bert: hidden={hidden} must be a multiple of heads={heads}: change one of them")
    g = GraphWriter("bert", opset, seed)
    bias = _mask_bias(g)
    h = _embeddings(g, vocab, hidden, seq)
    for _ in range(layers):
        h = _encoder_layer(g, h, bias, hidden, heads, 4 * hidden)
    g.rename(h, "last_hidden_state")
    cls = g.node("Gather", ["last_hidden_state", g.constant(0)], axis=1)
    g.rename(g.node("Tanh", [g.gemm(cls, hidden, hidden)]), "pooler_output")
    io = [(name, "int64", [batch, seq]) for name in ("input_ids", "attention_mask")]
    return g.save(path, io, [("last_hidden_state", "float32", [batch, seq, hidden]),
                             ("pooler_output", "float32", [batch, hidden])])
