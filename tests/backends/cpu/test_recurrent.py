"""RNN, GRU and LSTM kernels vs onnx.reference (defaults) and onnxruntime (what the reference ignores:
sequence_lens, activations, clip, input_forget)."""
import numpy as np
import pytest

from tests.oracle import check, onnxruntime, ours, rand

GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
N_OUT = {"RNN": 2, "GRU": 2, "LSTM": 3}


def layer_inputs(op, seq=4, batch=3, size=5, hidden=6, dirs=1, layout=0, bias=True, states=True,
                 peepholes=True, dtype="float32", seed=0):
    """[X, W, R, B, sequence_lens, initial_h(, initial_c, P)] with random values (None where omitted)."""
    g = GATES[op]
    x = rand(*((seq, batch, size) if layout == 0 else (batch, seq, size)), dtype=dtype, seed=seed)
    w = rand(dirs, g * hidden, size, dtype=dtype, low=-0.6, high=0.6, seed=seed + 1)
    r = rand(dirs, g * hidden, hidden, dtype=dtype, low=-0.6, high=0.6, seed=seed + 2)
    b = rand(dirs, 2 * g * hidden, dtype=dtype, seed=seed + 3) if bias else None
    state_shape = (dirs, batch, hidden) if layout == 0 else (batch, dirs, hidden)
    h0 = rand(*state_shape, dtype=dtype, seed=seed + 4) if states else None
    ins = [x, w, r, b, None, h0]
    if op == "LSTM":
        c0 = rand(*state_shape, dtype=dtype, seed=seed + 5) if states else None
        p = rand(dirs, 3 * hidden, dtype=dtype, seed=seed + 6) if peepholes else None
        ins += [c0, p]
    return ins


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("optional", [True, False])
def test_recurrent_matches_reference(op, direction, layout, optional):
    dirs = 2 if direction == "bidirectional" else 1
    ins = layer_inputs(op, dirs=dirs, layout=layout, bias=optional, states=optional, peepholes=optional)
    attrs = {"hidden_size": 6, "direction": direction, "layout": layout}
    check(op, ins, attrs, n_out=N_OUT[op], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("linear_before_reset", [0, 1])
def test_gru_linear_before_reset(linear_before_reset):
    check("GRU", layer_inputs("GRU"), {"hidden_size": 6, "linear_before_reset": linear_before_reset},
          n_out=2, rtol=1e-5, atol=1e-5)


def test_double_precision():
    check("LSTM", layer_inputs("LSTM", dtype="float64"), {"hidden_size": 6}, n_out=3, rtol=1e-9, atol=1e-9)


def _against_onnxruntime(op, ins, attrs):
    want = onnxruntime(op, ins, attrs, n_out=N_OUT[op], opset=14)
    got = ours(op, ins, attrs)
    for w, g in zip(want, got):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("op", ["RNN", "GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_sequence_lens_stop_each_batch_entry_at_its_length(op, direction):
    dirs = 2 if direction == "bidirectional" else 1
    ins = layer_inputs(op, seq=5, batch=4, dirs=dirs)
    ins[4] = np.array([5, 2, 1, 4], np.int32)
    _against_onnxruntime(op, ins, {"hidden_size": 6, "direction": direction})


@pytest.mark.parametrize("op,attrs", [
    ("RNN", {"activations": ["Relu"]}),
    ("RNN", {"activations": ["LeakyRelu", "Affine"], "activation_alpha": [0.2, 0.5], "activation_beta": [0.3],
             "direction": "bidirectional"}),
    ("GRU", {"activations": ["HardSigmoid", "Softsign"], "activation_alpha": [0.3], "activation_beta": [0.4]}),
    ("LSTM", {"activations": ["Sigmoid", "Elu", "ScaledTanh"], "activation_alpha": [0.5, 1.5],
              "activation_beta": [0.7]}),
    ("RNN", {"clip": 0.5}), ("GRU", {"clip": 0.3}), ("LSTM", {"clip": 0.4}),
    ("LSTM", {"input_forget": 1}),
])
def test_activations_clip_and_input_forget(op, attrs):
    dirs = 2 if attrs.get("direction") == "bidirectional" else 1
    _against_onnxruntime(op, layer_inputs(op, dirs=dirs), {"hidden_size": 6, **attrs})


def test_unknown_activation_is_unsupported():
    from workbench.errors import UnsupportedError

    with pytest.raises(UnsupportedError, match="Gelu"):
        ours("RNN", layer_inputs("RNN"), {"hidden_size": 6, "activations": ["Gelu"]})
