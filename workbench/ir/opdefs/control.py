"""Control flow: If, Loop, Scan. Their subgraphs (sub-Networks held in attributes) are inferred with the
enclosing graph's Infos visible, through the `scope` every rule of a `scoped` op is given.

Values that change from one iteration to the next (Loop-carried values, Scan states) enter a body
without their known value, and with the dims that differ between the start and the end of an
iteration widened to fresh symbols, so nothing inferred inside a body holds for one iteration only.
"""
from __future__ import annotations

import numpy as np

from .. import dims
from ...errors import ShapeError
from ..ops import Info, op
from ..rules import symbolic_value

ITERATION, CONDITION = Info("int64", ()), Info("bool", ())


def merged(a: Info, b: Info, what: str, prefix: str) -> Info:
    """One Info for a value that is `a` or `b`: equal dims stay, differing ones become fresh symbols."""
    if a.dtype != b.dtype:
        raise ShapeError(f"{what} is {a.dtype} in one place and {b.dtype} in another; they must agree")
    if a.shape is None or b.shape is None or len(a.shape) != len(b.shape):
        return Info(a.dtype, None)
    return Info(a.dtype, tuple(x if x == y else dims.fresh(prefix) for x, y in zip(a.shape, b.shape)))


def _varying(info: Info) -> Info:
    return Info(info.dtype, info.shape)  # the value of the first iteration is not that of the others


def _known_true(info: Info | None) -> bool:
    return info is not None and isinstance(info.value, np.ndarray) and info.value.size == 1 and bool(info.value)


def infer_body(scope, body, head: list, carried: list, tail: list, first: int, what: str) -> tuple:
    """(body output Infos, carried Infos valid for every iteration) of a Loop or Scan body.

    The body takes inputs head + carried + tail; its outputs first..first+len(carried) are the carried
    values of the next iteration. Dims that change between iterations are widened and the body is
    inferred once more with them.
    """
    carried = [_varying(c) for c in carried]
    outs = scope.infer(body, [*head, *carried, *tail])
    if len(outs) < first + len(carried):
        raise ShapeError(f"{what}: the body has {len(outs)} outputs, fewer than the {first + len(carried)} "
                         f"it must return")
    ends = outs[first:first + len(carried)]
    widened = [merged(c, e, f"{what}: carried value {i}", "loop") for i, (c, e) in enumerate(zip(carried, ends))]
    if widened != carried:
        outs = scope.infer(body, [*head, *widened, *tail])
        ends = outs[first:first + len(carried)]
        widened = [merged(w, e, f"{what}: carried value {i}", "loop") if w != e else w
                   for i, (w, e) in enumerate(zip(widened, ends))]
    return outs, widened


@op("If", since=1, scoped=True, then_branch=None, else_branch=None)
def if_(cond, *, then_branch, else_branch, scope):
    """The outputs of the branch taken when cond is a known constant; otherwise each output merges the
    two branches' (same dtype; equal dims stay, differing dims become fresh symbols)."""
    if then_branch is None or else_branch is None:
        raise ShapeError("If needs both a then_branch and an else_branch graph")
    then, other = scope.infer(then_branch, []), scope.infer(else_branch, [])
    if len(then) != len(other):
        raise ShapeError(f"If branches return {len(then)} and {len(other)} outputs; they must return as many")
    if isinstance(cond.value, np.ndarray) and cond.value.size == 1:
        return tuple(then if bool(cond.value.reshape(-1)[0]) else other)
    return tuple(merged(a, b, f"If output {i}", "if") for i, (a, b) in enumerate(zip(then, other)))


@op("Loop", since=1, scoped=True, body=None)
def loop(trip_count=None, cond=None, *initial, body, scope):
    """(final carried values, scan outputs stacked on a new first axis of one entry per iteration)."""
    if body is None:
        raise ShapeError("Loop needs a body graph")
    if len(body.inputs) != 2 + len(initial):
        raise ShapeError(f"Loop body takes {len(body.inputs)} inputs; it must take 2 + {len(initial)} "
                         f"(iteration number, condition, carried values)")
    outs, finals = infer_body(scope, body, [ITERATION, CONDITION], list(initial), [], 1, "Loop")
    if outs[0].dtype != "bool":
        raise ShapeError(f"Loop body's first output (the condition) is {outs[0].dtype}, not bool")
    scans = outs[1 + len(initial):]
    count = _trip_count(trip_count, cond, outs[0])
    return (*finals, *(Info(s.dtype, None if s.shape is None else (count, *s.shape)) for s in scans))


def _trip_count(trip_count, cond, cond_out) -> dims.Dim:
    """Iterations run: the trip count when it is known (a constant, or a dim such as the "t" of a
    `for i in range(x.size(0))` export) and no condition can stop the loop early."""
    stops_early = (cond is not None and not _known_true(cond)) or not _known_true(cond_out)
    count = symbolic_value(trip_count)
    if stops_early or count is None or len(count) != 1:
        return dims.fresh("loop_iterations")
    return max(count[0], 0) if isinstance(count[0], int) else count[0]


def scan_layout(n_inputs: int, num_scan_inputs, opset) -> tuple:
    """(index of the first state input, number of states, number of scan inputs) of a Scan layer."""
    batched = opset is not None and opset < 9
    first = 1 if batched else 0
    m = int(num_scan_inputs or 0)
    if m <= 0 or first + m > n_inputs:
        raise ShapeError(f"Scan needs num_scan_inputs between 1 and its {n_inputs - first} inputs, got "
                         f"{num_scan_inputs}")
    return first, n_inputs - first - m, m


def axes_of(values, count: int, ranks: list, what: str) -> list:
    """Per-value axes (default 0), normalised against each value's rank."""
    axes = list(values or [])
    if axes and len(axes) != count:
        raise ShapeError(f"Scan {what} has {len(axes)} entries for {count} values")
    axes = axes or [0] * count
    return [dims.normalize_axis(int(a), r, f"Scan {what}") if r is not None else int(a)
            for a, r in zip(axes, ranks)]


@op("Scan", since=8, scoped=True, body=None, num_scan_inputs=None, directions=None, scan_input_axes=None,
    scan_input_directions=None, scan_output_axes=None, scan_output_directions=None, _opset=None)
def scan(*ins, body, num_scan_inputs, directions, scan_input_axes, scan_input_directions, scan_output_axes,
         scan_output_directions, _opset, scope):
    """(final states, scan outputs): opset 9+ scans the scan inputs along their scan_input_axes;
    opset 8 takes sequence lengths first and has a batch axis 0 before the scanned axis 1."""
    if body is None:
        raise ShapeError("Scan needs a body graph")
    first, n, m = scan_layout(len(ins), num_scan_inputs, _opset)
    states, scans = list(ins[first:first + n]), list(ins[first + n:])
    if any(s is None for s in states + scans):
        raise ShapeError("Scan's states and scan inputs cannot be omitted")
    if first:  # opset 8: one scan per batch entry, over axis 1
        return _batched(scope, body, states, scans)
    in_axes = axes_of(scan_input_axes, m, [_rank(s) for s in scans], "scan_input_axes")
    finals, outs, length = _scan(scope, body, states, scans, in_axes)
    out_axes = axes_of(scan_output_axes, len(outs), [_rank(o, 1) for o in outs], "scan_output_axes")
    return (*finals, *(_insert(o, a, length) for o, a in zip(outs, out_axes)))


def _scan(scope, body, states: list, scans: list, in_axes: list) -> tuple:
    """(final state Infos, per-iteration scan output Infos, scanned length) of a Scan body."""
    if len(body.inputs) != len(states) + len(scans):
        raise ShapeError(f"Scan body takes {len(body.inputs)} inputs, the layer gives it "
                         f"{len(states)} states + {len(scans)} scan inputs")
    slices = [Info(s.dtype, None if s.shape is None else s.shape[:a] + s.shape[a + 1:])
              for s, a in zip(scans, in_axes)]
    lengths = [s.shape[a] for s, a in zip(scans, in_axes) if s.shape is not None]
    outs, finals = infer_body(scope, body, [], states, slices, 0, "Scan")
    return finals, outs[len(states):], lengths[0] if lengths else dims.fresh("scan_length")


def _batched(scope, body, states: list, scans: list) -> tuple:
    """Opset-8 Scan: the body sees each batch entry; states are (batch, ...), scans (batch, seq, ...)."""
    values = states + scans
    batch = next((v.shape[0] for v in values if v.shape), dims.fresh("batch"))
    unbatched = [Info(v.dtype, None if v.shape is None else v.shape[1:]) for v in values]
    finals, outs, length = _scan(scope, body, unbatched[:len(states)], unbatched[len(states):], [0] * len(scans))
    finals = [_insert(f, 0, batch) for f in finals]
    return (*finals, *(_insert(_insert(o, 0, length), 0, batch) for o in outs))


def _rank(info: Info, extra: int = 0):
    return None if info.shape is None else len(info.shape) + extra


def _insert(info: Info, axis: int, dim) -> Info:
    if info.shape is None:
        return Info(info.dtype, None)
    return Info(info.dtype, info.shape[:axis] + (dim,) + info.shape[axis:])
