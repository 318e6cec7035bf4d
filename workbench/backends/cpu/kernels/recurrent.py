"""NumPy kernels of RNN, GRU and LSTM (ONNX semantics: every direction, activation list, clip,
sequence_lens, initial states, peepholes, input_forget, both layouts).

The input projections X W^T + Wb of all time steps are one matrix product; then a loop over time
steps applies the cell. With sequence_lens, a batch entry's state stops changing after its last
step, its Y rows past it are 0, and the reverse direction runs over each entry's own steps
(len-1 down to 0), as onnxruntime does.
"""
from __future__ import annotations

import numpy as np

from ....errors import UnsupportedError
from ....ir.opdefs.recurrent import DIRECTIONS, GATES
from ..registry import kernel
from .activation import ELEMENTWISE
from .elementwise import widen

# Activation functions the recurrent ops name, with their (alpha, beta) defaults.
_ACTIVATIONS = {
    "relu": (lambda x, a, b: ELEMENTWISE["Relu"](x), None, None),
    "tanh": (lambda x, a, b: np.tanh(x), None, None),
    "sigmoid": (lambda x, a, b: ELEMENTWISE["Sigmoid"](x), None, None),
    "softsign": (lambda x, a, b: ELEMENTWISE["Softsign"](x), None, None),
    "softplus": (lambda x, a, b: ELEMENTWISE["Softplus"](x), None, None),
    "affine": (lambda x, a, b: a * x + b, 1.0, 0.0),
    "leakyrelu": (lambda x, a, b: ELEMENTWISE["LeakyRelu"](x, alpha=a), 0.01, None),
    "thresholdedrelu": (lambda x, a, b: ELEMENTWISE["ThresholdedRelu"](x, alpha=a), 1.0, None),
    "scaledtanh": (lambda x, a, b: a * np.tanh(b * x), 1.0, 1.0),
    "hardsigmoid": (lambda x, a, b: ELEMENTWISE["HardSigmoid"](x, alpha=a, beta=b), 0.2, 0.5),
    "elu": (lambda x, a, b: ELEMENTWISE["Elu"](x, alpha=a), 1.0, None),
}
DEFAULT_ACTIVATIONS = {"RNN": ["Tanh"], "GRU": ["Sigmoid", "Tanh"], "LSTM": ["Sigmoid", "Tanh", "Tanh"]}


def activation_functions(op_name: str, activations, alphas, betas, dirs: int) -> list:
    """Per direction, the list of activation callables f(x) (f, g[, h]).

    Alphas and betas are taken in order by the functions that have parameters, as onnxruntime does.
    """
    names = list(activations) if activations else DEFAULT_ACTIVATIONS[op_name] * dirs
    per_dir = len(DEFAULT_ACTIVATIONS[op_name])
    if len(names) == per_dir and dirs == 2:
        names = names * 2
    if len(names) != per_dir * dirs:
        raise UnsupportedError(f"{op_name}: activations needs {per_dir * dirs} names for {dirs} direction(s), "
                               f"got {names}")
    alphas, betas = list(alphas or []), list(betas or [])
    fns = []
    for name in names:
        key = name.decode() if isinstance(name, bytes) else str(name)
        if key.lower() not in _ACTIVATIONS:
            raise UnsupportedError(f"{op_name}: activation {key!r} is not supported; "
                                   f"known: {sorted(_ACTIVATIONS)}")
        fn, a, b = _ACTIVATIONS[key.lower()]
        a = alphas.pop(0) if a is not None and alphas else a
        b = betas.pop(0) if b is not None and betas else b
        fns.append(lambda x, fn=fn, a=a, b=b: fn(x, a, b))
    return [fns[d * per_dir:(d + 1) * per_dir] for d in range(dirs)]


def _clipper(clip):
    return (lambda x: x) if clip is None else (lambda x: np.clip(x, -clip, clip))


# ---------------------------------------------------------------------------------- cells
def rnn_cell(r, rb, acts, clip, **_):
    """step(xw_t, (h,)) -> (h,) for H_t = f(X_t W^T + Wb + H_{t-1} R^T + Rb)."""
    (f,) = acts

    def step(xw, states):
        return (f(clip(xw + states[0] @ r.T + rb)),)

    return step


def gru_cell(r, rb, acts, clip, linear_before_reset=0, **_):
    """step(xw_t, (h,)) -> (h,); gates z, r, h in that order."""
    f, g = acts
    hidden = r.shape[1]
    r_zr, r_h = r[:2 * hidden], r[2 * hidden:]
    rb_zr, rb_h = rb[:2 * hidden], rb[2 * hidden:]

    def step(xw, states):
        (h,) = states
        zr = f(clip(xw[:, :2 * hidden] + h @ r_zr.T + rb_zr))
        z, reset = zr[:, :hidden], zr[:, hidden:]
        if linear_before_reset:
            candidate = xw[:, 2 * hidden:] + reset * (h @ r_h.T + rb_h)
        else:
            candidate = xw[:, 2 * hidden:] + (reset * h) @ r_h.T + rb_h
        return ((1 - z) * g(clip(candidate)) + z * h,)

    return step


def lstm_cell(r, rb, acts, clip, p=None, input_forget=0, **_):
    """step(xw_t, (h, c)) -> (h, c); gates i, o, f, c in that order, peepholes i, o, f."""
    f, g, h_act = acts
    hidden = r.shape[1]
    p_i, p_o, p_f = (np.zeros(hidden, r.dtype),) * 3 if p is None else np.split(p, 3)

    def step(xw, states):
        h, c = states
        gates = xw + h @ r.T + rb
        i_pre, o_pre, f_pre, c_pre = np.split(gates, 4, axis=1)
        i = f(clip(i_pre + p_i * c))
        forget = 1 - i if input_forget else f(clip(f_pre + p_f * c))
        c_new = forget * c + i * g(clip(c_pre))
        o = f(clip(o_pre + p_o * c_new))
        return o * h_act(c_new), c_new

    return step


CELLS = {"RNN": rnn_cell, "GRU": gru_cell, "LSTM": lstm_cell}


# ---------------------------------------------------------------------------------- the time loop
def scan(step, xw: np.ndarray, states: tuple, lens: np.ndarray, reverse: bool) -> tuple:
    """Run `step` over the time steps of xw (seq, batch, k); returns (Y (seq, batch, hidden), final states)."""
    seq, batch = xw.shape[:2]
    rows = np.arange(batch)
    ys = np.zeros((seq, batch, states[0].shape[-1]), dtype=xw.dtype)
    for s in range(seq):
        t = lens - 1 - s if reverse else np.full(batch, s)
        active = (t >= 0) & (t < lens)
        t = np.clip(t, 0, seq - 1)
        new = step(xw[t, rows], states)
        if active.all():
            states = new
        else:
            states = tuple(np.where(active[:, None], n, o) for n, o in zip(new, states))
        ys[t[active], rows[active]] = states[0][active]
    return ys, states


def run_recurrent(op_name: str, x, w, r, b, sequence_lens, initial_states: list, attrs: dict, extra: dict) -> tuple:
    """Y, Y_h[, Y_c] of a recurrent layer; `extra` holds cell-specific inputs and attributes."""
    direction, layout = attrs.get("direction", "forward"), attrs.get("layout", 0)
    dirs = DIRECTIONS[direction]
    wx, ww, wr, wb, *states0 = widen(x, w, r, b, *initial_states)
    if layout:
        wx = np.swapaxes(wx, 0, 1)
        states0 = [None if s is None else np.swapaxes(s, 0, 1) for s in states0]
    seq, batch = wx.shape[:2]
    hidden = wr.shape[-1]
    gates = GATES[op_name] * hidden
    wb = np.zeros((dirs, 2 * gates), wx.dtype) if wb is None else wb
    lens = np.full(batch, seq) if sequence_lens is None else np.asarray(sequence_lens).astype(np.int64)
    acts = activation_functions(op_name, attrs.get("activations"), attrs.get("activation_alpha"),
                                attrs.get("activation_beta"), dirs)
    ys, finals = [], []
    for d in range(dirs):
        cell_extra = {k: (v[d] if isinstance(v, np.ndarray) else v) for k, v in extra.items()}
        step = CELLS[op_name](wr[d], wb[d, gates:], acts[d], _clipper(attrs.get("clip")), **cell_extra)
        states = tuple(np.zeros((batch, hidden), wx.dtype) if s is None else s[d] for s in states0)
        xw = wx @ ww[d].T + wb[d, :gates]
        y, final = scan(step, xw, states, lens, reverse=direction == "reverse" or d == 1)
        ys.append(y)
        finals.append(final)
    y = np.stack(ys, axis=1)  # (seq, dirs, batch, hidden)
    outs = [np.stack([f[i] for f in finals]) for i in range(len(states0))]  # (dirs, batch, hidden)
    if layout:
        y, outs = y.transpose(2, 0, 1, 3), [o.transpose(1, 0, 2) for o in outs]
    return tuple(o.astype(x.dtype) for o in [y, *outs])


@kernel("RNN")
def rnn(x, w, r, b=None, sequence_lens=None, initial_h=None, **attrs):
    """(Y, Y_h); attrs: activation_alpha, activation_beta, activations, clip, direction, hidden_size, layout."""
    with np.errstate(over="ignore"):
        return run_recurrent("RNN", x, w, r, b, sequence_lens, [initial_h], attrs, {})


@kernel("GRU")
def gru(x, w, r, b=None, sequence_lens=None, initial_h=None, **attrs):
    """(Y, Y_h); attrs: those of RNN and linear_before_reset."""
    with np.errstate(over="ignore"):
        return run_recurrent("GRU", x, w, r, b, sequence_lens, [initial_h], attrs,
                             {"linear_before_reset": attrs.get("linear_before_reset", 0)})


@kernel("LSTM")
def lstm(x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None, **attrs):
    """(Y, Y_h, Y_c); attrs: those of RNN and input_forget."""
    (wp,) = widen(p)
    with np.errstate(over="ignore"):
        return run_recurrent("LSTM", x, w, r, b, sequence_lens, [initial_h, initial_c], attrs,
                             {"p": wp, "input_forget": attrs.get("input_forget", 0)})
