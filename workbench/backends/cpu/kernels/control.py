"""Control flow: If, Loop, Scan. Each runs its subgraph with the CPU graph executor; `scope` holds the
values the subgraph reads from the graph around the layer (the executor passes it to scoped kernels).
"""
from __future__ import annotations

import numpy as np

from .... import limits
from ....errors import ExecutionError, ResourceLimitError
from ....ir import dims
from ....ir.opdefs.control import axes_of, scan_layout
from ..graph import GraphRunner, run_graph
from ..registry import kernel


def _flag(x, what: str) -> bool:
    x = np.asarray(x)
    if x.size != 1:
        raise ExecutionError(f"{what} must hold one value, got shape {x.shape}")
    return bool(x.reshape(-1)[0])


@kernel("If", scoped=True)
def if_(cond, *, then_branch, else_branch, scope):
    """The outputs of then_branch when cond is true, else those of else_branch."""
    return tuple(run_graph(then_branch if _flag(cond, "If's condition") else else_branch, {}, scope))


@kernel("Loop", scoped=True)
def loop(trip_count=None, cond=None, *initial, body, scope):
    """Run the body while the iteration number is below trip_count (when given) and the condition holds
    (the body's first output is the next condition); scan outputs are stacked along a new axis 0."""
    runner, n = GraphRunner(body), len(initial)
    limit = None if trip_count is None else int(np.asarray(trip_count).reshape(-1)[0])
    go = True if cond is None else _flag(cond, "Loop's condition")
    values, scans, i = list(initial), [[] for _ in body.outputs[1 + n:]], 0
    while go and (limit is None or i < limit):
        _count_iteration(i)
        outs = runner.run(dict(zip(body.inputs, [np.array(i, np.int64), np.array(go), *values])), scope)
        go, values = _flag(outs[0], "Loop body's condition output"), outs[1:1 + n]
        _stack_up(scans, outs[1 + n:], body.outputs[1 + n:])
        i += 1
    fed = [None, None, *(np.shape(v) for v in initial)]
    return (*values, *(_stacked(s, body, name, fed) for s, name in zip(scans, body.outputs[1 + n:])))


def _count_iteration(i: int) -> None:
    """Stop a loop that runs past limits.MAX_LOOP_ITERATIONS (read at each call: users may raise it)."""
    if i >= limits.MAX_LOOP_ITERATIONS:
        raise ResourceLimitError(f"the loop is still running after {i} iterations, the most allowed; the model "
                                 f"may never stop (or raise workbench.limits.MAX_LOOP_ITERATIONS)")


def _stack_up(stacks: list, values: list, names: list) -> None:
    """Append one iteration's scan outputs, refusing a stack that would grow past the size limit (a
    body's values are checked one by one; what piles up over a million iterations is checked here)."""
    for stack, value, name in zip(stacks, values, names):
        stack.append(value)
        limits.refuse_over_limit(len(stack) * np.asarray(value).nbytes,
                                 f"scan output {name!r} after {len(stack)} iterations")


def _stacked(values: list, body, name: str, fed: list) -> np.ndarray:
    """Per-iteration values stacked on a new axis 0. With no iteration at all: (0, *the body's inferred
    shape of the value), its symbolic dims bound by the shapes `fed` to the body's inputs (as
    onnxruntime does for static shapes), or (0,) when that leaves a dim unknown."""
    if values:
        return np.stack(values)
    t = body.tensors.get(name)
    dtype = np.dtype(t.dtype) if t is not None else np.float32
    bindings: dict = {}
    for input_name, shape in zip(body.inputs, fed):
        declared = body.tensors[input_name].shape
        if shape is not None and declared is not None and len(declared) == len(shape):
            bindings.update({d: v for d, v in zip(declared, shape) if isinstance(d, str)})
    shape = dims.substitute(t.shape, bindings) if t is not None and t.shape is not None else None
    return np.zeros((0, *shape) if dims.is_static(shape) else (0,), dtype)


@kernel("Scan", scoped=True)
def scan(*ins, body, num_scan_inputs, directions, scan_input_axes, scan_input_directions, scan_output_axes,
         scan_output_directions, _opset, scope):
    """Opset 9+: run the body once per slice of the scan inputs along their axes (reversed where the
    direction is 1), carrying the states; scan outputs are stacked along their axes (prepended where
    the direction is 1). Opset 8: the same per batch entry, over axis 1, up to each sequence length."""
    first, _, m = scan_layout(len(ins), num_scan_inputs, _opset)
    runner, states, inputs = GraphRunner(body), list(ins[first:-m]), list(ins[-m:])
    if first:
        return _batched(runner, ins[0], states, inputs, directions, scope)
    in_axes = axes_of(scan_input_axes, m, [x.ndim for x in inputs], "scan_input_axes")
    seqs = [_sequence(x, a, d) for x, a, d in zip(inputs, in_axes, scan_input_directions or [0] * m)]
    finals, outs = _scan(runner, states, seqs, scope)
    k = len(outs)
    out_axes = axes_of(scan_output_axes, k, [o.ndim for o in outs], "scan_output_axes")
    for i, d in enumerate(scan_output_directions or [0] * k):
        outs[i] = np.moveaxis(outs[i][::-1] if d else outs[i], 0, out_axes[i])
    return (*finals, *outs)


def _sequence(x: np.ndarray, axis: int, direction: int) -> np.ndarray:
    """The scan input with its scanned axis first, in the order the body sees the slices."""
    x = np.moveaxis(x, axis, 0)
    return x[::-1] if direction else x


def _scan(runner, states: list, seqs: list, scope) -> tuple:
    """(final states, scan outputs stacked on axis 0) of one scan over the first axis of `seqs`."""
    length = seqs[0].shape[0]
    if any(s.shape[0] != length for s in seqs):
        raise ExecutionError(f"Scan inputs have different lengths along their scan axes: "
                             f"{[s.shape[0] for s in seqs]}")
    body, n = runner.net, len(states)
    outs: list = [[] for _ in body.outputs[n:]]
    fed = [np.shape(s) for s in states] + [s.shape[1:] for s in seqs]
    for t in range(length):
        values = runner.run(dict(zip(body.inputs, [*states, *(s[t] for s in seqs)])), scope)
        states = values[:n]
        _stack_up(outs, values[n:], body.outputs[n:])
    return states, [_stacked(o, body, name, fed) for o, name in zip(outs, body.outputs[n:])]


def _batched(runner, lengths, states: list, inputs: list, directions, scope) -> tuple:
    """Opset-8 Scan: one scan per batch entry (axis 0) over axis 1, each up to its sequence length;
    scan outputs of shorter sequences are zero-padded to the longest."""
    batch, seq = inputs[0].shape[0], inputs[0].shape[1]
    lengths = [seq] * batch if lengths is None else [int(v) for v in np.asarray(lengths).reshape(-1)]
    if len(lengths) != batch or any(not 0 <= v <= seq for v in lengths):
        raise ExecutionError(f"Scan's sequence_lens {lengths} do not fit a batch of {batch} sequences of {seq}")
    directions = directions or [0] * len(inputs)
    results = []
    for b, length in enumerate(lengths):
        seqs = [_sequence(x[b, :length], 0, d) for x, d in zip(inputs, directions)]
        finals, outs = _scan(runner, [s[b] for s in states], seqs, scope)
        outs = [np.pad(o, [(0, seq - o.shape[0])] + [(0, 0)] * (o.ndim - 1)) for o in outs]
        results.append(finals + outs)
    return tuple(np.stack(column) for column in zip(*results))
