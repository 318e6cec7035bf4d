"""Shape rules of the recurrent layers RNN, GRU and LSTM.

X is (seq, batch, input) with layout 0, (batch, seq, input) with layout 1. Outputs: Y (seq, dirs,
batch, hidden) (layout 1: (batch, seq, dirs, hidden)), Y_h (dirs, batch, hidden) (layout 1: (batch,
dirs, hidden)) and, for LSTM, Y_c like Y_h.
"""
from __future__ import annotations

from .. import dims
from ...errors import ShapeError
from ..ops import Info, op

DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}  # weight blocks stacked in W and R

_COMMON = dict(activation_alpha=None, activation_beta=None, activations=None, clip=None,
               direction="forward", hidden_size=None, layout=0)


def recurrent_outputs(op_name: str, x: Info, w: Info, r: Info, direction: str, hidden_size, layout: int,
                      n_states: int) -> tuple:
    """(Y, Y_h[, Y_c]) Infos for an RNN/GRU/LSTM layer."""
    if direction not in DIRECTIONS:
        raise ShapeError(f"{op_name}: direction must be one of {sorted(DIRECTIONS)}, got {direction!r}")
    if layout not in (0, 1):
        raise ShapeError(f"{op_name}: layout must be 0 or 1, got {layout!r}")
    dirs = DIRECTIONS[direction]
    if w.shape is not None and isinstance(w.shape[0], int) and w.shape[0] != dirs:
        raise ShapeError(f"{op_name}: W has {w.shape[0]} directions, direction={direction!r} needs {dirs}")
    hidden = hidden_size if hidden_size is not None else (r.shape[-1] if r.shape is not None else dims.fresh("hidden"))
    if x.shape is None:
        seq, batch = dims.fresh("seq"), dims.fresh("batch")
    elif len(x.shape) != 3:
        raise ShapeError(f"{op_name}: X must be 3-D (sequence, batch, input), got shape {x.shape}")
    else:
        seq, batch = (x.shape[0], x.shape[1]) if layout == 0 else (x.shape[1], x.shape[0])
    y = (seq, dirs, batch, hidden) if layout == 0 else (batch, seq, dirs, hidden)
    state = (dirs, batch, hidden) if layout == 0 else (batch, dirs, hidden)
    return (Info(x.dtype, y),) + (Info(x.dtype, state),) * n_states


@op("RNN", since=7, **_COMMON)
def rnn(x, w, r, b=None, sequence_lens=None, initial_h=None, *, direction, hidden_size, layout, **_):
    """(Y, Y_h): H_t = f(X_t W^T + H_{t-1} R^T + Wb + Rb)."""
    return recurrent_outputs("RNN", x, w, r, direction, hidden_size, layout, 1)


@op("GRU", since=7, linear_before_reset=0, **_COMMON)
def gru(x, w, r, b=None, sequence_lens=None, initial_h=None, *, direction, hidden_size, layout, **_):
    """(Y, Y_h), gates z, r, h stacked in that order in W, R and B."""
    return recurrent_outputs("GRU", x, w, r, direction, hidden_size, layout, 1)


@op("LSTM", since=7, input_forget=0, **_COMMON)
def lstm(x, w, r, b=None, sequence_lens=None, initial_h=None, initial_c=None, p=None, *, direction,
         hidden_size, layout, **_):
    """(Y, Y_h, Y_c), gates i, o, f, c stacked in that order in W, R and B; peepholes P are i, o, f."""
    return recurrent_outputs("LSTM", x, w, r, direction, hidden_size, layout, 2)
